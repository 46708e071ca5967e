//! Nothing to run: this package exists to build every published crate from its `.crate` file;
//! the README examples are its `examples/`, written by `cargo xtask package`.

fn main() {}
