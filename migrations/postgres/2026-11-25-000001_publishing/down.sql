DROP TABLE sandbox_posts;
DROP TABLE publishing_control;
DROP TABLE delivery_attempts;
DROP TABLE deliveries;
ALTER TABLE statements DROP COLUMN language;
