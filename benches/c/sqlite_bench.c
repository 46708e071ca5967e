/* The sqlite.* workloads of benchmarks.md in C, linked against the same SQLite amalgamation
 * rusqlite bundles, so `cargo xtask bench-report` can set our figures beside what the hardware
 * allows in one run. Prints one JSON object per figure and run. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/time.h>
#include <sys/stat.h>
#include <unistd.h>
#include "sqlite3.h"

#define ROWS 100000
#define BATCH 1000
#define READS 10000
#define RANGES 1000
#define UPDATES 10000

static const char *STATUSES[5] = {"created", "running", "paused", "completed", "failed"};

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

static void iso_now(char *buf, size_t n) {
    struct timeval tv;
    struct tm tm;
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    size_t k = strftime(buf, n, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + k, n - k, ".%03ldZ", (long)(tv.tv_usec / 1000));
}

static void check(int rc, sqlite3 *db, const char *what) {
    if (rc != SQLITE_OK && rc != SQLITE_DONE && rc != SQLITE_ROW) {
        fprintf(stderr, "%s: %s\n", what, sqlite3_errmsg(db));
        exit(1);
    }
}

static long read_row(sqlite3_stmt *s) {
    long n = 0;
    for (int i = 0; i < 6; i++) {
        if (sqlite3_column_type(s, i) == SQLITE_TEXT) {
            sqlite3_column_text(s, i);
            n += sqlite3_column_bytes(s, i);
        } else {
            n += (long)sqlite3_column_int64(s, i) & 1;
        }
    }
    return n;
}

static long long fsize(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 ? (long long)st.st_size : 0;
}


#define PHASE static __attribute__((noinline))

static char ids[BATCH][32], metas[BATCH][160], times[BATCH][32];
static volatile long sink = 0;

PHASE double phase_batch_insert(sqlite3 *db) {
    sqlite3_stmt *ins;
    check(sqlite3_prepare_v2(db, "INSERT INTO tasks (taskId, status, metadata, currentVersion, createdAt, updatedAt)"
        " VALUES (?1, ?2, ?3, 1, ?4, ?4)", -1, &ins, NULL), db, "prepare insert");
    double t0 = now_s();
    for (int b = 0; b < ROWS / BATCH; b++) {
        for (int j = 0; j < BATCH; j++) {
            int i = b * BATCH + j;
            snprintf(ids[j], sizeof ids[j], "task-%d", i);
            snprintf(metas[j], sizeof metas[j],
                "{\"value\":%.17g,\"nested\":{\"data\":\"test-%d\"},\"array\":[1,2,3,4,5]}", drand48(), i);
            iso_now(times[j], sizeof times[j]);
        }
        check(sqlite3_exec(db, "BEGIN", NULL, NULL, NULL), db, "begin");
        for (int j = 0; j < BATCH; j++) {
            int i = b * BATCH + j;
            sqlite3_bind_text(ins, 1, ids[j], -1, SQLITE_STATIC);
            sqlite3_bind_text(ins, 2, STATUSES[i % 5], -1, SQLITE_STATIC);
            sqlite3_bind_text(ins, 3, metas[j], -1, SQLITE_STATIC);
            sqlite3_bind_text(ins, 4, times[j], -1, SQLITE_STATIC);
            check(sqlite3_step(ins), db, "insert");
            sqlite3_reset(ins);
        }
        check(sqlite3_exec(db, "COMMIT", NULL, NULL, NULL), db, "commit");
    }
    double t = now_s() - t0;
    sqlite3_finalize(ins);
    return ROWS / t;
}

PHASE double phase_single_read(sqlite3 *db) {
    sqlite3_stmt *rd;
    check(sqlite3_prepare_v2(db, "SELECT * FROM tasks WHERE taskId = ?1", -1, &rd, NULL), db, "prepare read");
    char id[32];
    double t0 = now_s();
    for (int k = 0; k < READS; k++) {
        snprintf(id, sizeof id, "task-%ld", lrand48() % ROWS);
        sqlite3_bind_text(rd, 1, id, -1, SQLITE_TRANSIENT);
        while (sqlite3_step(rd) == SQLITE_ROW) sink += read_row(rd);
        sqlite3_reset(rd);
    }
    double t = now_s() - t0;
    sqlite3_finalize(rd);
    return READS / t;
}

PHASE double phase_range_query(sqlite3 *db) {
    sqlite3_stmt *rq;
    check(sqlite3_prepare_v2(db, "SELECT * FROM tasks WHERE status = ?1 LIMIT 100", -1, &rq, NULL), db, "prepare range");
    double t0 = now_s();
    for (int q = 0; q < RANGES; q++) {
        sqlite3_bind_text(rq, 1, STATUSES[q % 5], -1, SQLITE_STATIC);
        while (sqlite3_step(rq) == SQLITE_ROW) sink += read_row(rq);
        sqlite3_reset(rq);
    }
    double t = now_s() - t0;
    sqlite3_finalize(rq);
    return RANGES / t;
}

PHASE double phase_update(sqlite3 *db) {
    sqlite3_stmt *up;
    check(sqlite3_prepare_v2(db, "UPDATE tasks SET status = 'completed', currentVersion = 2, updatedAt = ?1 WHERE taskId = ?2",
        -1, &up, NULL), db, "prepare update");
    char ts[32], id[32];
    double t0 = now_s();
    for (int k = 0; k < UPDATES; k++) {
        iso_now(ts, sizeof ts);
        snprintf(id, sizeof id, "task-%ld", lrand48() % ROWS);
        sqlite3_bind_text(up, 1, ts, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(up, 2, id, -1, SQLITE_TRANSIENT);
        check(sqlite3_step(up), db, "update");
        sqlite3_reset(up);
    }
    double t = now_s() - t0;
    sqlite3_finalize(up);
    return UPDATES / t;
}

PHASE double phase_full_scan(sqlite3 *db) {
    sqlite3_stmt *sc;
    check(sqlite3_prepare_v2(db, "SELECT * FROM tasks", -1, &sc, NULL), db, "prepare scan");
    long rows = 0;
    double t0 = now_s();
    while (sqlite3_step(sc) == SQLITE_ROW) { sink += read_row(sc); rows++; }
    double t = now_s() - t0;
    sqlite3_finalize(sc);
    return rows / t;
}

int main(int argc, char **argv) {
    int runs = argc > 1 ? atoi(argv[1]) : 1;
    const char *dir = argc > 2 ? argv[2] : "/tmp";
    char path[4096], wal[4200];
    srand48(42);
    for (int run = 0; run < runs; run++) {
        snprintf(path, sizeof path, "%s/c-bench-%d-%d.db", dir, (int)getpid(), run);
        snprintf(wal, sizeof wal, "%s-wal", path);
        unlink(path);
        sqlite3 *db;
        check(sqlite3_open(path, &db), db, "open");
        check(sqlite3_exec(db,
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA cache_size = -64000;"
            "PRAGMA temp_store = MEMORY;"
            "CREATE TABLE tasks (taskId TEXT PRIMARY KEY, status TEXT NOT NULL, metadata TEXT NOT NULL,"
            " currentVersion INTEGER NOT NULL, createdAt TEXT NOT NULL, updatedAt TEXT NOT NULL);"
            "CREATE INDEX idx_status ON tasks(status); CREATE INDEX idx_updatedAt ON tasks(updatedAt);",
            NULL, NULL, NULL), db, "schema");
        double ins = phase_batch_insert(db);
        double rd = phase_single_read(db);
        double rq = phase_range_query(db);
        double up = phase_update(db);
        double sc = phase_full_scan(db);
        printf("{\"bench\":\"sqlite.batch_insert\",\"measured\":%f}\n", ins);
        printf("{\"bench\":\"sqlite.single_read\",\"measured\":%f}\n", rd);
        printf("{\"bench\":\"sqlite.range_query\",\"measured\":%f}\n", rq);
        printf("{\"bench\":\"sqlite.update\",\"measured\":%f}\n", up);
        printf("{\"bench\":\"sqlite.full_scan\",\"measured\":%f}\n", sc);
        printf("{\"bench\":\"sqlite.db_size\",\"measured\":%f}\n", fsize(path) / 1024.0 / 1024.0);
        sqlite3_close(db);
        unlink(path);
        unlink(wal);
    }
    return sink == -1;
}
