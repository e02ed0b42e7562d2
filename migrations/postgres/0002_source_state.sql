-- where each daemon source stands, one row per source key (imap:<account>/<mailbox>), so daemons
-- reading different folders never share a position.
create table source_state (
    source       text    collate "C" primary key,
    uidvalidity  bigint  not null,
    last_uid     bigint  not null,
    updated_at   bigint  not null
);
