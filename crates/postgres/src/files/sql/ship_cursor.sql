-- Where collector `$2` last acknowledged task `$1`'s log.
SELECT generation, seq FROM {s}.ship_cursors WHERE task = $1 AND collector = $2
