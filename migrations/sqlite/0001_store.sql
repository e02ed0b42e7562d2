-- the bounce database: messages as received, one bounce row per recipient result,
-- one recipient row per normalized address, and the history of every state change.
-- times are unix seconds (utc) in integer columns, portable to postgresql as bigint.

-- one row per input message; the sha-256 of the raw bytes makes recording idempotent.
create table messages (
    id                  integer primary key,
    sha256              text    not null unique,   -- hex digest of the raw bytes
    source              text    not null,          -- file:<path>, maildir:<path>, imap:<account>/<mailbox>/<uidvalidity>/<uid>
    received_at         integer not null,          -- when the message reached us
    recorded_at         integer not null,          -- when this row was written
    kind                text    not null,          -- dsn, text, feedback, autoreply, not_bounce, error
    reader              text    not null,          -- the reader that recognised it, or none
    error               text,                      -- the read error, when kind is error
    original_message_id text,                      -- message-id of the returned original
    original_list_id    text,                      -- list-id of the returned original
    raw_size            integer not null,          -- length of the raw message in bytes
    raw_deflate         blob    not null           -- the raw message, zlib-compressed, for reclassify
);

-- one row per normalized address: local part as sent, domain lower-cased.
create table recipients (
    id                    integer primary key,
    address               text    not null unique,
    domain                text    not null,
    state                 text    not null default 'active' check (state in ('active', 'suppressed')),
    hard_count            integer not null default 0,
    soft_count            integer not null default 0,
    complaint_count       integer not null default 0,
    other_count           integer not null default 0,   -- delivered and vacation notices
    soft_score            integer not null default 0,   -- counted soft bounces since the score last reset
    soft_last_counted_at  integer,                      -- the last soft bounce that counted
    first_bounce_at       integer,
    last_bounce_at        integer,
    suppressed_at         integer,
    suppressed_type       text check (suppressed_type in ('hard', 'complaint', 'soft', 'manual')),
    suppressed_why        text,                         -- reason name, or the operator's words
    suppressed_bounce_id  integer references bounces (id) on delete set null,
    manual                text check (manual in ('suppressed', 'unsuppressed')),  -- operator override
    updated_at            integer not null
);
create index recipients_domain on recipients (domain);
create index recipients_state on recipients (state, suppressed_at);

-- one row per recipient result of a message (the fields of the classify json, plus the rule id).
create table bounces (
    id                  integer primary key,
    message_id          integer not null references messages (id) on delete cascade,
    position            integer not null,   -- order of the result within its message
    recipient_id        integer references recipients (id),
    recipient           text,               -- the address as the report gave it
    at                  integer not null,   -- when the failure happened: the report's date, else received_at
    action              text,
    status              text,
    replycode           text,
    reason              text    not null,
    bounce_type         text    not null check (bounce_type in ('hard', 'soft', 'complaint', 'none')),
    diagnostic          text,
    remote_mta          text,
    reporting_mta       text,
    date                text,               -- the date as the report wrote it
    feedback_type       text,
    rule                text    not null,
    reader              text    not null,
    original_message_id text,
    original_from       text,
    original_to         text,
    original_subject    text,
    original_list_id    text,
    counted             integer not null default 0   -- 1 when this soft bounce raised the score
);
create index bounces_message on bounces (message_id);
create index bounces_recipient on bounces (recipient_id, at);
create index bounces_at on bounces (at);

-- every change of a recipient's state, with its cause, so "why" can be answered.
create table events (
    id            integer primary key,
    recipient_id  integer not null references recipients (id) on delete cascade,
    at            integer not null,
    change        text    not null check (change in ('suppressed', 'unsuppressed')),
    cause         text    not null,   -- hard, complaint, soft_threshold, manual, reclassify
    bounce_id     integer references bounces (id) on delete set null,
    rule          text,
    note          text
);
create index events_recipient on events (recipient_id, at);
