-- What a restore would otherwise compute from a checkpoint's file (decision 0038), kept beside
-- the file when the checkpoint is made: each line's time, level (a log's) and agent (a
-- decision's), in the file's order, and the SHA-256 of the file they describe
-- (`lines_sha256`), so that they are used only for that exact file. For the log, also the
-- task's generation and next sequence number at that moment (or after its last restore): while
-- the task is in that generation and still holds its entries from 1, its entries below
-- `next_seq` are the file's lines, and a restore keeps them. NULL for a checkpoint made before this version or moved in
-- by `oc db import-files`: a restore reads each line instead, as before.
ALTER TABLE {s}.checkpoint_files
    ADD COLUMN lines_sha256 bytea,
    ADD COLUMN ts           bigint[],
    ADD COLUMN levels       smallint[],
    ADD COLUMN agents       text[],
    ADD COLUMN generation   bigint,
    ADD COLUMN next_seq     bigint;
