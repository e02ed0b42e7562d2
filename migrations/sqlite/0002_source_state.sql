-- where each daemon source stands, so a restart resumes exactly where the last run stopped.
-- an imap folder keeps its uidvalidity and the highest uid whose message was committed and
-- acknowledged; a change of uidvalidity means every uid was reassigned, so the folder is read again
-- from the start (recording is idempotent on the message hash, so nothing is counted twice).
-- a maildir needs no row: its state is the files themselves (new/, cur/ with the S flag).
create table source_state (
    source       text    primary key,   -- imap:<account>/<mailbox>
    uidvalidity  integer not null,      -- the folder's uidvalidity when last_uid was written
    last_uid     integer not null,      -- every uid up to this one is recorded and acknowledged
    updated_at   integer not null       -- unix seconds of the last change
);
