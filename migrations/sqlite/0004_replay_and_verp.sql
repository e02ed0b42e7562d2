-- a recipient's state is a function of its stored bounces and the operator's decisions, applied in
-- the order of their keys (time, then type, then reason), whatever order they arrived in.

-- the key of the latest bounce or decision the recipient's state includes (see store/replay.rs):
-- a batch whose bounces all sort after it extends the state; any other replays the history.
alter table recipients add column policy_key text;
update recipients set policy_key = (
    select max(k) from (
        select printf('%015d:%d:%s', b.at + 100000000000000,
                      case b.bounce_type when 'hard' then 0 when 'complaint' then 1 else 2 end,
                      b.reason) as k
        from bounces b where b.recipient_id = recipients.id and b.bounce_type <> 'none'
        union all
        select printf('%015d:9:', e.at + 100000000000000) as k
        from events e where e.recipient_id = recipients.id and e.cause = 'manual'
    )
);

-- the recipient the bounce address names when the list sends with VERP
-- (list-bounces+user=example.net@...), decoded; null when the address is not VERP-encoded.
alter table messages add column verp_recipient text;

-- 1 when the message's VERP address names another recipient than this bounce: a report about
-- someone the message was not sent to. kept and shown, never applied to that recipient's state.
alter table bounces add column verp_mismatch integer not null default 0;
