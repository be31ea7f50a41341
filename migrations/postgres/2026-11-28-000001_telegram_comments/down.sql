DROP TABLE telegram_offsets;
DROP TABLE telegram_comments;
