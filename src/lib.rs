//! crossdiff: how well do language models generalize across question difficulty?
//!
//! An embedded analytics library with a SQL face (Apache DataFusion). Per-item results of
//! many models become a canonical `responses` table; SQL functions estimate, rank and bin
//! item difficulty and correlate it with human proxies.
//!
//! Embedding it takes three lines:
//!
//! ```
//! # #[tokio::main] async fn main() -> datafusion::common::Result<()> {
//! let ctx = crossdiff::new_context();
//! ctx.sql("CREATE TABLE d(item_id VARCHAR, difficulty DOUBLE) AS VALUES ('a', 0.3), ('b', -1.2), ('c', 2.0)").await?;
//! let bins = ctx.sql("SELECT item_id, difficulty_bin(difficulty, 3, item_id) OVER () AS bin FROM d ORDER BY item_id").await?.collect().await?;
//! # assert_eq!(bins[0].num_rows(), 3);
//! # Ok(()) }
//! ```

pub mod bench;
pub mod bench_ingest;
pub mod cancel;
pub mod checksum;
pub mod data;
pub mod experiment;
pub mod irt;
pub mod limits;
pub mod lm;
pub mod local_files;
pub mod options;
pub mod plot;
pub mod session;
pub mod settings;
pub mod shell;
pub mod stats;

#[path = "../udfs/mod.rs"]
pub mod udfs;

pub use datafusion;
pub use session::{new_context, register_data_dir};
