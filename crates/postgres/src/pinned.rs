//! Shipped migrations never change: each is pinned by the SHA-256 of its exact text (the
//! template, before the schema is put in), as sqlx pins its migrations. The constants were
//! computed from the text as it shipped; a failure here means a shipped migration was edited.
//! Add a migration instead, and its checksum below.

use sha2::{Digest, Sha256};

/// The SHA-256 of each oc-tasks migration, in order.
const TASKS: &[&str] = &[
    "dbbf7601cd29ef6b64bfe663570eede7edc8a0f4ea8b926b0994b7a666fdc597",
    "fe1890e39d16bba2d5bff93384a335f4d69c2950d66c7064c6686884e0ee91a5",
    "03a2f0ee821298c1d3a00487251823b6d8a76fc416bb60f1a4cd1046bf521255",
    "b59356de91807dac91426f7500310be7bf203f085a8fe1f1b9ee576ac2b8c75c",
    "9d2f3b55e95680e9280b93b720611e84bc05b26f0d2dca11711e66a3f0de9f42",
    "43d8cdc58ba7d8ccec9c950340cb6064676a390772f49072c8906e0cc149146b",
    "3562b181774951ee39d2e0651cb072af4f043a7b2d6e36404672785b330f573b",
    // 8 (the archive of finished tasks, decision 0051).
    "0e04c0d7b790a297f85eaeb394a1a15cfeeb6ca006d5867bff5de44164b1d985",
    // 9 (cheaper transitions, decision 0052).
    "30e5cd750ab6f60b62b320ffa4e07ffa66f5cf813f3ac52359556f259f94c85d",
];

/// The SHA-256 of each oc-locks migration, in order.
const LOCKS: &[&str] = &[
    "4c1cb110f9ed89f2850f6a3d1c696c35e88cc7c208ff0b850475703596451e94",
    "dc3c90c7d38cff71e1654680c6b10c4fd2d384b95fc38fd93541e6fbbc9cffe0",
    "9c29046facc6a353584bbcff0bd5cc954e4492976dfd70c3252dddec7f5fa30c",
    "db145ce18e47a35f44911e7d430c98d396052cb1d41791fade2bcfeab9dc3290",
    // 5 (fewer statements per operation, decision 0053).
    "cbdb0ef7136dc3bddf0ccc5e29e67334a817d21487902c4bfbdad7b4ab3e7f2c",
];

/// The SHA-256 of each oc-files migration (a task's files, decision 0036), in order.
const FILES: &[&str] = &[
    "b2ef1926c9b99225c9faa8ec12a5fc766e2dbd95ec38399149b4816989c66ec3",
    "0eb4c1d6f9211a42786a931d5a31d339e064b6e6c55d0317ff22beb6718ed9b5",
    "a3697e01bab640a0190cae30340d2fe597726c534cb55bd581ee545618cbf370",
    "215cf18421baf6704055457194eeb85e479ab2a429bf20ff6009e101193b379f",
];

/// The SHA-256 of each oc-auth migration (static tokens), in order.
const AUTH: &[&str] = &["8d9fe5ad7eaf06ad63e1da9368ccbe32da589f5b9346428c260919dd7c6e9612"];

fn sha256(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn check(component: &str, texts: &[String], pinned: &[&str]) {
    assert_eq!(
        texts.len(),
        pinned.len(),
        "{component}: a migration was added or removed; pin every shipped one (and only those)"
    );
    for (i, (text, want)) in texts.iter().zip(pinned).enumerate() {
        assert_eq!(
            sha256(text),
            *want,
            "{component} migration {} changed after it shipped: add a new migration instead",
            i + 1
        );
    }
}

#[test]
fn shipped_task_migrations_never_change() {
    let texts: Vec<String> = crate::tasks::MIGRATIONS
        .iter()
        .map(|m| (*m).to_owned())
        .collect();
    check("oc-tasks", &texts, TASKS);
}

#[test]
fn shipped_lock_migrations_never_change() {
    let texts: Vec<String> = crate::locks::MIGRATIONS
        .iter()
        .map(|m| (*m).to_owned())
        .collect();
    check("oc-locks", &texts, LOCKS);
}

#[test]
fn shipped_file_migrations_never_change() {
    let texts: Vec<String> = crate::files::MIGRATIONS
        .iter()
        .map(|m| (*m).to_owned())
        .collect();
    check("oc-files", &texts, FILES);
}

#[test]
fn shipped_auth_migrations_never_change() {
    let texts: Vec<String> = crate::auth::MIGRATIONS
        .iter()
        .map(|m| (*m).to_owned())
        .collect();
    check("oc-auth", &texts, AUTH);
}

#[test]
fn the_checksum_is_sha256() {
    assert_eq!(
        sha256("abc"),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
}
