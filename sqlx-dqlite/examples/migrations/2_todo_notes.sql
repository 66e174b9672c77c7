ALTER TABLE todos ADD COLUMN notes TEXT;
CREATE INDEX todos_by_done ON todos (done);
