//! SMTP reply codes (RFC 5321) and enhanced status codes (RFC 3463): parsing and meaning.
