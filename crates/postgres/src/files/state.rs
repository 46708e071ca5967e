//! A task's state: stored as the file a data directory holds (`state.json`: the state, when it
//! was saved and the SHA-256 of its compact JSON), so a checkpoint copies it as it is and a
//! load verifies it as on disk.

use oc_jsonl::{Error, MAX_STATE_BYTES, Result};
use oc_time::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::PgFileStore;
use super::row::{signed, unsigned};

/// What `state.json` holds, as `oc_jsonl` writes it.
#[derive(Debug, Serialize, Deserialize)]
struct StateFile {
    checksum: String,
    #[serde(rename = "savedAt")]
    saved_at: Timestamp,
    state: Value,
}

/// Hex SHA-256 of `bytes`.
pub(super) fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl PgFileStore {
    pub(super) fn store_state(&self, task: &str, state: &Value) -> Result<()> {
        let invalid = |reason: String| Error::InvalidInput {
            field: "state",
            reason,
        };
        let canonical = serde_json::to_vec(state).map_err(|e| invalid(e.to_string()))?;
        let file = StateFile {
            checksum: sha256_hex(&canonical),
            saved_at: self
                .clock_ms()
                .map_or_else(Timestamp::now, Timestamp::from_millis),
            state: state.clone(),
        };
        let bytes = serde_json::to_vec_pretty(&file).map_err(|e| invalid(e.to_string()))?;
        if bytes.len() as u64 > MAX_STATE_BYTES {
            return Err(invalid(format!(
                "its file would take {} bytes; at most {MAX_STATE_BYTES} are read back",
                bytes.len()
            )));
        }
        let t = task.to_owned();
        self.call(
            move |c| async move { c.client.execute(&c.stmts.save_state, &[&t, &bytes]).await },
        )?;
        Ok(())
    }

    pub(super) fn read_state(&self, task: &str) -> Result<Option<Value>> {
        let (t, max) = (task.to_owned(), signed(MAX_STATE_BYTES));
        let row = self.call(move |c| async move {
            c.client.query_opt(&c.stmts.load_state, &[&t, &max]).await
        })?;
        let Some(r) = row else { return Ok(None) };
        let bad = |e: tokio_postgres::Error| self.corrupt(task, "state.json", e);
        let len: i32 = r.try_get(0).map_err(bad)?;
        let Some(bytes) = r.try_get::<_, Option<Vec<u8>>>(1).map_err(bad)? else {
            return Err(self.corrupt(
                task,
                "state.json",
                format!(
                    "it is {} bytes, larger than {MAX_STATE_BYTES}",
                    unsigned(i64::from(len))
                ),
            ));
        };
        let file: StateFile = serde_json::from_slice(&bytes)
            .map_err(|e| self.corrupt(task, "state.json", format!("not a state file: {e}")))?;
        let canonical =
            serde_json::to_vec(&file.state).map_err(|e| self.corrupt(task, "state.json", e))?;
        let actual = sha256_hex(&canonical);
        if actual != file.checksum {
            return Err(self.corrupt(
                task,
                "state.json",
                format!(
                    "checksum {actual} does not match the recorded {}",
                    file.checksum
                ),
            ));
        }
        Ok(Some(file.state))
    }
}
