-- A contact the dialer cannot call, whatever the time (its stored row does
-- not decode, or none of its numbers is usable), is set aside: it ends
-- `exhausted` with no attempt counted for the claim that found it, and
-- this says why, for the operator. Null for every other contact.
ALTER TABLE contacts ADD COLUMN set_aside_reason text;
