//! The project's documentation pages: the durability contract, the semantics, the on-disk
//! format and the test catalogue. They are this crate's rustdoc (`cargo doc --open`, then
//! `mqlite::docs`), so they travel with the code they describe.

#[doc = include_str!("durability.md")]
pub mod durability {}

#[doc = include_str!("semantics.md")]
pub mod semantics {}

#[doc = include_str!("tests.md")]
pub mod tests {}
