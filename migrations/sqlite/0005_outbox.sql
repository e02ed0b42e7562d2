-- the outbox: every change of a recipient's state (and, when a target asks for them, every recorded
-- bounce) as an event for the list manager, written in the same transaction as the change it
-- announces. notify workers copy new events into their target's deliveries and send them.

-- the campaign header (x-listmonk-campaign) of the returned original, for the listmonk target.
alter table messages add column original_campaign text;

-- one row per event, in the order the changes were committed.
create table outbox_events (
    seq          integer primary key,               -- commit order
    id           text    not null unique,           -- stable event id: the idempotency key sent with every attempt
    at           integer not null,                  -- when the change was recorded
    event        text    not null check (event in ('suppressed', 'unsuppressed', 'bounce')),
    address      text    not null,
    bounce_type  text,                              -- hard, soft, complaint or manual (what the event filters read)
    campaign     text,                              -- the returned original's campaign header, when known
    body         text    not null                   -- the event as json, exactly as sent
);

-- each target's place in the event stream: events after `cursor` are not yet copied into its deliveries.
create table outbox_targets (
    name        text    primary key,
    cursor      integer not null,                  -- the last outbox_events.seq copied (or skipped by its filter)
    created_at  integer not null
);

-- one row per event and target that wants it.
create table outbox_deliveries (
    target      text    not null,
    event_seq   integer not null references outbox_events (seq) on delete cascade,
    address     text    not null,                  -- copied from the event: per-address order is per target
    state       text    not null default 'pending' check (state in ('pending', 'delivered', 'dead')),
    attempts    integer not null default 0,
    next_at     integer not null,                  -- unix milliseconds of the next attempt
    last_error  text,
    updated_at  integer not null,
    primary key (target, event_seq)
);
create index outbox_deliveries_order on outbox_deliveries (target, state, event_seq);
create index outbox_deliveries_address on outbox_deliveries (target, address, state, event_seq);

-- memberships a mailman target disabled for a suppressed address, so that unsuppressing it
-- re-enables exactly those and leaves alone what a member or a moderator disabled.
create table notify_disabled (
    target     text    not null,
    member_id  text    not null,   -- mailman's member id
    address    text    not null,
    list_id    text    not null,
    at         integer not null,
    primary key (target, member_id)
);
create index notify_disabled_address on notify_disabled (target, address);

-- 1 when [trust] is configured and this bounce offered no proof of being about mail we sent (the
-- returned original's list-id, message-id domain, campaign header, or a matching verp address):
-- recorded and counted, never applied to the recipient's state.
alter table bounces add column untrusted integer not null default 0;
