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
