"""The files that come from outside, as schemas: each parsed whole before any work, its first
defect one line naming the file, the record and the field."""
