//! The `TaskFileStore` conformance suite and model test (`oc_jsonl::testkit`) on every store
//! of this crate.

mod model_store {
    use std::sync::Arc;

    use oc_jsonl::TaskFileStore;
    use oc_jsonl::testkit::ModelStore;

    oc_jsonl::file_store_conformance_tests!(|| {
        let s = Arc::new(ModelStore::new());
        let c = s.corrupter();
        (s as Arc<dyn TaskFileStore>, c)
    });

    mod model {
        use oc_jsonl::testkit::{ModelStore, model};
        use proptest::prelude::*;

        proptest! {
            #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

            #[test]
            fn model_store_agrees_with_the_model(ops in model::ops()) {
                model::run(&ModelStore::new(), &ops);
            }
        }
    }
}

/// `DirFileStore` on a fresh temporary data directory per test; the corrupter flips a byte of
/// `<data>/tasks/<task>/checkpoints/<cp>/<file>`.
mod dir_store {
    use std::sync::Arc;

    use oc_jsonl::testkit::Corrupter;
    use oc_jsonl::{DirFileStore, TaskFileStore};

    /// Flips the middle byte of a checkpoint's file under `data`, which it owns: the directory
    /// goes when the test drops the corrupter.
    pub(crate) fn corrupter(data: tempfile::TempDir) -> Corrupter {
        Box::new(move |task: &str, cp: &str, file: &str| {
            let path = data
                .path()
                .join("tasks")
                .join(task)
                .join("checkpoints")
                .join(cp)
                .join(file);
            let mut bytes = std::fs::read(&path).unwrap();
            assert!(!bytes.is_empty(), "{} is empty", path.display());
            let mid = bytes.len() / 2;
            bytes[mid] ^= 0x01;
            std::fs::write(&path, bytes).unwrap();
        })
    }

    pub(crate) fn make() -> (Arc<dyn TaskFileStore>, Corrupter) {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(DirFileStore::new(dir.path())) as Arc<dyn TaskFileStore>;
        (store, corrupter(dir))
    }

    oc_jsonl::file_store_conformance_tests!(make);

    mod model {
        use oc_jsonl::DirFileStore;
        use oc_jsonl::testkit::model;
        use proptest::prelude::*;

        proptest! {
            #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

            #[test]
            fn dir_store_agrees_with_the_model(ops in model::ops()) {
                let dir = tempfile::tempdir().unwrap();
                model::run(&DirFileStore::new(dir.path()), &ops);
            }
        }
    }
}
