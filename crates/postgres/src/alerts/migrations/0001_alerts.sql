CREATE TABLE {s}.alert_states (
        fingerprint text COLLATE "C" PRIMARY KEY,
        body        jsonb NOT NULL
    );
    CREATE TABLE {s}.alert_silences (
        id        bigserial PRIMARY KEY,
        matchers  jsonb NOT NULL,
        starts_at bigint NOT NULL,
        ends_at   bigint NOT NULL,
        comment   text NOT NULL
    );
    CREATE TABLE {s}.alert_outbox (
        id           bigserial PRIMARY KEY,
        receiver     text NOT NULL,
        body         jsonb NOT NULL,
        delivered_at bigint
    );
    CREATE INDEX alert_outbox_undelivered ON {s}.alert_outbox (id) WHERE delivered_at IS NULL;
    CREATE TABLE {s}.alert_lease (
        name       text PRIMARY KEY,
        holder     text NOT NULL,
        token      text NOT NULL,
        expires_at bigint NOT NULL
    );
