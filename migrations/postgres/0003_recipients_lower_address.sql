-- the case-insensitive lookup of an address uses this index.
create index recipients_address_lower on recipients (lower(address));
