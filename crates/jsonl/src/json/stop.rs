//! Why the serializer stopped: the error every part of it returns.

use std::fmt::Display;

use serde::ser;

/// Why [`Json`](super::serializer::Json) stopped: it gave up (`serde_json` writes the value
/// instead and reports any error), or the value nests deeper than
/// [`MAX_DEPTH`](super::MAX_DEPTH) (nothing is written).
#[derive(Debug)]
pub(super) enum Stop {
    GiveUp,
    TooDeep,
}

impl Display for Stop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Stop::GiveUp => "left to serde_json",
            Stop::TooDeep => "nested too deep",
        })
    }
}

impl std::error::Error for Stop {}

impl ser::Error for Stop {
    fn custom<M: Display>(_: M) -> Self {
        Stop::GiveUp
    }
}

pub(super) type Result<T = ()> = std::result::Result<T, Stop>;
