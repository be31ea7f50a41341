ALTER TABLE sandbox_posts DROP COLUMN author;
DROP TABLE webhook_attempts;
DROP TABLE webhook_deliveries;
DROP TABLE webhooks;
DROP TABLE reply_spikes;
DROP TABLE responses;
DROP TABLE reply_polls;
DROP TABLE replies;
