//! The `crossdiff sql` shell: an own loop on rustyline (line editing, history, multi-line
//! statements ending in `;`, backslash commands, Ctrl-C cancelling the running query) and a
//! script runner that stops at the first failing statement and names it.

mod error;
mod print;
pub mod split;

use std::io::Write;
use std::time::Instant;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use datafusion::prelude::SessionContext;
use rustyline::error::ReadlineError;
use thiserror::Error;

pub use error::ShellError;
pub use print::OutputFormat;
use split::{split, split_script, Piece};

use crate::udfs;

/// A failed statement of a script: which one, where, and why.
#[derive(Debug, Error)]
#[error("statement {number} (line {line} of {origin}) failed: {first_line}\n{source}")]
pub struct ScriptError {
    pub number: usize,
    pub line: usize,
    pub origin: String,
    pub first_line: String,
    #[source]
    pub source: ShellError,
}

/// Rows the table format shows unless told otherwise (datafusion-cli's default).
pub const DEFAULT_MAX_ROWS: usize = 40;

/// What the shell should do after a piece.
#[derive(Debug, PartialEq, Eq)]
enum Flow {
    Continue,
    Quit,
}

pub struct Shell {
    ctx: SessionContext,
    format: OutputFormat,
    /// Rows the table format shows (`None`: all).
    max_rows: Option<usize>,
    timing: bool,
    /// Runtime the queries run on, apart from the shell's own, so that a cancelled query
    /// whose operators do not yield cannot starve the next one: on Ctrl-C this runtime is
    /// shut down in the background and a fresh one serves the next statement.
    queries: Option<tokio::runtime::Runtime>,
}

impl Drop for Shell {
    fn drop(&mut self) {
        if let Some(rt) = self.queries.take() {
            rt.shutdown_background();
        }
    }
}

const HELP: &str = "\
SQL statements end with ';' and may span lines. Commands:
  \\d               list tables
  \\d NAME          describe a table
  \\h               list crossdiff functions
  \\h NAME          documentation of a function (any DataFusion function too)
  \\format FMT      output as table, csv, json or ndjson
  \\maxrows N       rows a table shows (0: all; default 40)
  \\timing [on|off] show how long each statement takes
  \\q               quit
Ctrl-C cancels the running query; Ctrl-D quits.";

impl Shell {
    pub fn new(ctx: SessionContext, format: OutputFormat) -> Self {
        Self {
            ctx,
            format,
            max_rows: Some(DEFAULT_MAX_ROWS),
            timing: false,
            queries: None,
        }
    }

    /// Rows the table format shows (0: all).
    pub fn with_max_rows(mut self, max_rows: usize) -> Self {
        self.max_rows = (max_rows > 0).then_some(max_rows);
        self
    }

    pub fn context(&self) -> &SessionContext {
        &self.ctx
    }

    /// Plans and runs one statement on a task of its own, so that the shell's Ctrl-C handler
    /// is polled while it runs; dropping the returned future (Ctrl-C) aborts that task.
    async fn query(&mut self, sql: &str) -> Result<(SchemaRef, Vec<RecordBatch>), ShellError> {
        let (ctx, sql) = (self.ctx.clone(), sql.to_string());
        let runtime = match &mut self.queries {
            Some(rt) => rt,
            slot => slot.insert(
                tokio::runtime::Builder::new_multi_thread()
                    .enable_all()
                    .thread_name("crossdiff-query")
                    .thread_stack_size(crate::session::QUERY_STACK_BYTES)
                    .build()
                    .map_err(ShellError::Runtime)?,
            ),
        };
        let task = runtime.spawn(async move {
            crate::session::check_nesting(&ctx, &sql)?;
            let df = ctx.sql(&sql).await?;
            let schema: SchemaRef = std::sync::Arc::new(df.schema().as_arrow().clone());
            let batches = df.collect().await?;
            Ok::<_, ShellError>((schema, batches))
        });
        let _abort = AbortOnDrop(task.abort_handle());
        task.await.map_err(ShellError::Task)?
    }

    /// Runs one piece and prints its result to `out`; timing goes to stderr.
    async fn run_piece(&mut self, piece: &Piece, out: &mut dyn Write) -> Result<Flow, ShellError> {
        match piece {
            Piece::Command { text, .. } => self.command(text, out).await,
            Piece::Sql { text, .. } => {
                let started = Instant::now();
                let (schema, batches) = self.query(text).await?;
                print::print_batches(out, self.format, &schema, &batches, self.max_rows)?;
                if self.timing {
                    eprintln!("Time: {:.3} s", started.elapsed().as_secs_f64());
                }
                Ok(Flow::Continue)
            }
        }
    }

    async fn show(&mut self, sql: &str, out: &mut dyn Write) -> Result<Flow, ShellError> {
        let (schema, batches) = self.query(sql).await?;
        print::print_batches(out, self.format, &schema, &batches, self.max_rows)?;
        Ok(Flow::Continue)
    }

    async fn command(&mut self, text: &str, out: &mut dyn Write) -> Result<Flow, ShellError> {
        let mut words = text.split_whitespace();
        let name = words.next().unwrap_or("");
        let arg: Vec<&str> = words.collect();
        let arg = arg.join(" ");
        match name {
            "\\q" | "\\quit" => Ok(Flow::Quit),
            "\\?" => {
                writeln!(out, "{HELP}")?;
                Ok(Flow::Continue)
            }
            "\\d" if arg.is_empty() => {
                self.show(
                    "SELECT table_schema AS schema, table_name AS name, table_type AS type \
                     FROM information_schema.tables WHERE table_schema <> 'information_schema' \
                     ORDER BY table_schema, table_name",
                    out,
                )
                .await
            }
            "\\d" => {
                if self.ctx.table_exist(arg.as_str())? {
                    self.show(&format!("DESCRIBE {arg}"), out).await
                } else {
                    Err(ShellError::NoTable(arg))
                }
            }
            "\\timing" => {
                self.timing = match arg.as_str() {
                    "" => !self.timing,
                    "on" => true,
                    "off" => false,
                    other => {
                        return Err(ShellError::BadArgument {
                            command: "\\timing",
                            expected: "on or off",
                            given: other.to_string(),
                        })
                    }
                };
                eprintln!("Timing is {}.", if self.timing { "on" } else { "off" });
                Ok(Flow::Continue)
            }
            "\\maxrows" => {
                let n: usize = arg.trim().parse().map_err(|_| ShellError::BadArgument {
                    command: "\\maxrows",
                    expected: "a number of rows (0 shows all)",
                    given: arg.clone(),
                })?;
                self.max_rows = (n > 0).then_some(n);
                Ok(Flow::Continue)
            }
            "\\format" | "\\pset" => {
                let value = arg.strip_prefix("format").unwrap_or(&arg).trim();
                self.format =
                    OutputFormat::parse(value).ok_or_else(|| ShellError::BadArgument {
                        command: "\\format",
                        expected: "table, csv, json or ndjson",
                        given: value.to_string(),
                    })?;
                Ok(Flow::Continue)
            }
            "\\h" | "\\help" => {
                let text = if arg.is_empty() {
                    function_list()
                } else {
                    function_help(&self.ctx, &arg)?
                };
                writeln!(out, "{text}")?;
                Ok(Flow::Continue)
            }
            other => Err(ShellError::UnknownCommand(other.to_string())),
        }
    }

    /// Runs a script of statements and commands; stops at the first error, naming the
    /// statement (its number and first line).
    pub async fn run_script(
        &mut self,
        script: &str,
        origin: &str,
        out: &mut dyn Write,
    ) -> Result<bool, ScriptError> {
        for (index, piece) in split_script(script).iter().enumerate() {
            match self.run_piece(piece, out).await {
                Ok(Flow::Continue) => {}
                Ok(Flow::Quit) => return Ok(false),
                Err(source) => {
                    return Err(ScriptError {
                        number: index + 1,
                        line: piece.line(),
                        origin: origin.to_string(),
                        first_line: piece.first_line().to_string(),
                        source,
                    })
                }
            }
        }
        Ok(true)
    }

    /// The interactive loop. Errors are printed and the shell goes on.
    pub async fn repl(&mut self) -> rustyline::Result<()> {
        let mut editor = rustyline::DefaultEditor::new()?;
        let history = history_path();
        if let Some(path) = &history {
            let _ = editor.load_history(path);
        }
        eprintln!(
            "crossdiff {} SQL shell. \\? for help, \\q to quit.",
            env!("CARGO_PKG_VERSION")
        );
        let mut buffer = String::new();
        loop {
            let prompt = if buffer.trim().is_empty() {
                "crossdiff> "
            } else {
                "       -> "
            };
            match editor.readline(prompt) {
                Ok(line) => {
                    buffer.push_str(&line);
                    buffer.push('\n');
                    let (pieces, rest) = split(&buffer, 1);
                    if pieces.is_empty() {
                        if rest.is_empty() {
                            buffer.clear();
                        }
                        continue;
                    }
                    let _ = editor.add_history_entry(buffer.trim_end());
                    // Saved at once, so a shell that is killed keeps its history.
                    save_history(&mut editor, &history);
                    buffer = rest;
                    for piece in pieces {
                        if self.interactive_piece(&piece).await == Flow::Quit {
                            save_history(&mut editor, &history);
                            return Ok(());
                        }
                    }
                }
                Err(ReadlineError::Interrupted) => {
                    // Ctrl-C at the prompt drops the unfinished statement.
                    buffer.clear();
                }
                Err(ReadlineError::Eof) => break,
                Err(e) => {
                    save_history(&mut editor, &history);
                    return Err(e);
                }
            }
        }
        save_history(&mut editor, &history);
        Ok(())
    }

    /// Runs one piece, cancelling it on Ctrl-C (dropping the query's future stops its work).
    async fn interactive_piece(&mut self, piece: &Piece) -> Flow {
        let mut stdout = std::io::stdout();
        let result = tokio::select! {
            r = self.run_piece(piece, &mut stdout) => r,
            _ = tokio::signal::ctrl_c() => Err(ShellError::Cancelled),
        };
        match result {
            Ok(flow) => flow,
            Err(error) => {
                if matches!(error, ShellError::Cancelled) {
                    if let Some(rt) = self.queries.take() {
                        // Shutting the runtime down drops the query (its work stops at its
                        // next check); waiting a moment for that lets a long job take its
                        // progress line off the screen before the prompt comes back. Work
                        // slower to stop is left to finish in the background.
                        let _ = tokio::task::spawn_blocking(move || {
                            rt.shutdown_timeout(std::time::Duration::from_secs(3))
                        })
                        .await;
                    }
                }
                eprintln!("Error: {error}");
                Flow::Continue
            }
        }
    }
}

/// Aborts a spawned query when the future waiting for it is dropped.
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn history_path() -> Option<std::path::PathBuf> {
    if let Some(p) = std::env::var_os("CROSSDIFF_HISTORY") {
        return Some(p.into());
    }
    std::env::var_os("HOME").map(|h| std::path::Path::new(&h).join(".crossdiff_history"))
}

fn save_history(editor: &mut rustyline::DefaultEditor, path: &Option<std::path::PathBuf>) {
    if let Some(p) = path {
        let _ = editor.save_history(p);
    }
}

/// Scalar, aggregate and window functions of a session (DataFusion's own among them), by
/// name, with their kind.
fn documented_functions(
    ctx: &SessionContext,
) -> Vec<(
    String,
    &'static str,
    Option<datafusion::logical_expr::Documentation>,
)> {
    let state = ctx.state();
    let mut all = Vec::new();
    for (name, f) in state.scalar_functions() {
        all.push((name.clone(), "scalar", f.documentation().cloned()));
    }
    for (name, f) in state.aggregate_functions() {
        all.push((name.clone(), "aggregate", f.documentation().cloned()));
    }
    for (name, f) in state.window_functions() {
        all.push((name.clone(), "window", f.documentation().cloned()));
    }
    all.sort_by(|a, b| a.0.cmp(&b.0));
    all
}

fn function_list() -> String {
    let mut lines = vec![
        "crossdiff functions (\\h NAME for details, also of DataFusion's own functions):"
            .to_string(),
    ];
    for doc in udfs::function_docs() {
        lines.push(format!("  {:<10} {}", doc.kind, doc.syntax));
    }
    lines.join("\n")
}

fn function_help(ctx: &SessionContext, name: &str) -> Result<String, ShellError> {
    let name = name.trim().to_ascii_lowercase();
    if let Some(doc) = udfs::function_docs().into_iter().find(|d| d.name == name) {
        let mut text = format!(
            "{} ({} function)\n  {}\n\n{}",
            doc.name, doc.kind, doc.syntax, doc.description
        );
        if !doc.arguments.is_empty() {
            text.push_str("\n\nArguments:");
            for (arg, what) in &doc.arguments {
                text.push_str(&format!("\n  {arg}: {what}"));
            }
        }
        text.push_str(&format!("\n\nExample:\n{}", doc.example));
        return Ok(text);
    }
    let found = documented_functions(ctx)
        .into_iter()
        .find(|(n, _, _)| *n == name);
    match found {
        Some((n, kind, Some(doc))) => {
            let mut text = format!(
                "{n} ({kind} function)\n  {}\n\n{}",
                doc.syntax_example, doc.description
            );
            if let Some(args) = &doc.arguments {
                text.push_str("\n\nArguments:");
                for (arg, what) in args {
                    text.push_str(&format!("\n  {arg}: {what}"));
                }
            }
            if let Some(example) = &doc.sql_example {
                text.push_str(&format!("\n\nExample:\n{example}"));
            }
            Ok(text)
        }
        Some((n, kind, None)) => Ok(format!("{n} ({kind} function): no documentation")),
        None => Err(ShellError::NoFunction(name)),
    }
}
