DROP TABLE idempotency_keys;
DROP TABLE write_gate;
DROP TABLE publish_log;
DROP TABLE accounts;
DROP TABLE approvals;
DROP TABLE variants;
DROP TABLE statements;
DROP TABLE api_keys;
