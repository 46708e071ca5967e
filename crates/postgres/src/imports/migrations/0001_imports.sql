-- Where `oc db import-files` got to (decision 0036): per data directory (`source`, the id in
-- its `.oc-source`), task and stream (`log` or `decision`), the number of the last line moved
-- (1-based, across the rotated files oldest first), the SHA-256 of that line (so a log replaced
-- or rotated away since is noticed, not imported twice) and the bytes moved. Advanced in the
-- transaction that appends each batch.
CREATE TABLE {s}.file_imports (
    source    text COLLATE "C" NOT NULL,
    task      text COLLATE "C" NOT NULL,
    stream    text   NOT NULL CHECK (stream IN ('log', 'decision')),
    lines     bigint NOT NULL DEFAULT 0,
    last_hash text,
    bytes     bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (source, task, stream)
);
