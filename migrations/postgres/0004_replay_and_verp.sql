-- the key of the latest bounce or decision the recipient's state includes (see store/replay.rs).
alter table recipients add column policy_key text collate "C";

-- the recipient a VERP bounce address names, decoded.
alter table messages add column verp_recipient text collate "C";

-- true when the message's VERP address names another recipient than this bounce.
alter table bounces add column verp_mismatch boolean not null default false;
