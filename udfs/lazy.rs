//! A table whose work (reading files, fitting) runs when the query executes, not when it is
//! planned: `EXPLAIN` only plans, and dropping the query aborts the work. Every table
//! function that does real work returns a [`LazyTable`].

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::Result;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::{Expr, TableType};
use datafusion::physical_expr::LexOrdering;
use datafusion::physical_plan::stream::RecordBatchReceiverStream;
use datafusion::physical_plan::streaming::{PartitionStream, StreamingTableExec};
use datafusion::physical_plan::ExecutionPlan;
use futures::future::BoxFuture;

/// Work that yields the table's one batch.
pub type Job = Arc<dyn Fn() -> BoxFuture<'static, Result<RecordBatch>> + Send + Sync>;

/// Makes the job of one scan from the session the query runs in.
pub type JobFactory = Arc<dyn Fn(&dyn Session) -> Result<Job> + Send + Sync>;

/// A table whose single batch is computed by a job when the query executes.
pub struct LazyTable {
    schema: SchemaRef,
    make_job: JobFactory,
}

impl LazyTable {
    pub fn new(schema: SchemaRef, make_job: JobFactory) -> Self {
        Self { schema, make_job }
    }
}

impl fmt::Debug for LazyTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LazyTable")
            .field("schema", &self.schema)
            .finish()
    }
}

#[async_trait]
impl TableProvider for LazyTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::View
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        lazy_exec(
            self.schema.clone(),
            projection,
            limit,
            (self.make_job)(state)?,
        )
    }
}

struct JobPartition {
    schema: SchemaRef,
    job: Job,
}

impl fmt::Debug for JobPartition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JobPartition")
            .field("schema", &self.schema)
            .finish()
    }
}

impl PartitionStream for JobPartition {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let mut builder = RecordBatchReceiverStream::builder(self.schema.clone(), 1);
        let (tx, job) = (builder.tx(), self.job.clone());
        builder.spawn(async move {
            let batch = job().await?;
            // A closed receiver means the query was dropped: nothing to deliver.
            let _ = tx.send(Ok(batch)).await;
            Ok(())
        });
        builder.build()
    }
}

/// An execution plan that runs `job` when executed.
fn lazy_exec(
    schema: SchemaRef,
    projection: Option<&Vec<usize>>,
    limit: Option<usize>,
    job: Job,
) -> Result<Arc<dyn ExecutionPlan>> {
    let partition: Arc<dyn PartitionStream> = Arc::new(JobPartition {
        schema: schema.clone(),
        job,
    });
    Ok(Arc::new(StreamingTableExec::try_new(
        schema,
        vec![partition],
        projection,
        Vec::<LexOrdering>::new(),
        false,
        limit,
    )?))
}
