-- an address is looked up ignoring the case of its local part when the exact form is unknown
-- (a list manager asking about Jane@example.org when the bounce said jane@example.org): index that
-- expression, so the lookup costs the same as an exact one instead of reading the whole table.
create index recipients_address_lower on recipients (lower(address));
