//! The evaluator: lm-eval-harness's two request types over whole item lists, with per-item
//! outputs kept. Multiple choice scores each choice by its summed log-likelihood after the
//! context (`acc`, and `acc_norm` per character); generation decodes greedily until a stop
//! string, the end token or the token limit, filters the answer out with a regex and compares
//! it with `exact_match`.

use super::answers::{choose, truncate_at_stop, AnswerFilter, ExactMatch};
use super::score::{continuation_logliks, greedy_batch};
use super::tokenizer::TextTokenizer;
use super::{Decoder, LmError, Result};

/// A multiple-choice item: choices are continuations of the context, with the delimiter lm-eval
/// puts between them (usually a leading space) already in each choice.
#[derive(Debug, Clone, PartialEq)]
pub struct ChoiceItem {
    pub id: String,
    pub context: String,
    pub choices: Vec<String>,
    pub gold: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ChoiceResult {
    pub id: String,
    pub log_likelihoods: Vec<f64>,
    /// Whether each choice is the model's greedy continuation.
    pub is_greedy: Vec<bool>,
    pub prediction: usize,
    pub prediction_norm: usize,
    pub acc: bool,
    pub acc_norm: bool,
}

/// A generation item: the model continues `prompt`; the filtered answer must match `reference`.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerationItem {
    pub id: String,
    pub prompt: String,
    pub reference: String,
}

#[derive(Debug, Clone)]
pub struct GenerationOptions {
    pub max_new_tokens: usize,
    pub stop: Vec<String>,
    pub filter: AnswerFilter,
    pub matcher: ExactMatch,
    /// Prompts decoded together.
    pub batch_size: usize,
}

impl GenerationOptions {
    /// The paper's GSM8K settings: stop at `Q:`, `</s>`, `<|im_end|>`, 256 new tokens, the
    /// strict filter, GSM8K's exact_match.
    pub fn gsm8k_strict() -> Self {
        Self {
            max_new_tokens: 256,
            stop: ["Q:", "</s>", "<|im_end|>"].map(String::from).to_vec(),
            filter: AnswerFilter::gsm8k_strict(),
            matcher: ExactMatch::gsm8k(),
            batch_size: 16,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct GenerationResult {
    pub id: String,
    /// The generated text, cut at the first stop string.
    pub output: String,
    /// The filtered answer.
    pub prediction: String,
    pub correct: bool,
    pub new_tokens: usize,
}

/// A model and its tokenizer, ready to answer items.
pub struct Evaluator<'a> {
    pub model: &'a Decoder,
    pub tokenizer: &'a TextTokenizer,
    /// Whether plain (non-chat) text gets the tokenizer's special tokens (e.g. Llama's BOS),
    /// as lm-eval's default does. Text rendered through a chat template carries its own.
    pub add_special_tokens: bool,
    /// Token budget of one scoring batch (rows x longest row).
    pub batch_tokens: usize,
    pub progress: bool,
    /// Checked between batches: when set, the evaluation stops with `LmError::Cancelled`.
    pub cancel: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
}

impl<'a> Evaluator<'a> {
    pub fn new(model: &'a Decoder, tokenizer: &'a TextTokenizer) -> Self {
        Self {
            model,
            tokenizer,
            add_special_tokens: true,
            batch_tokens: 8192,
            progress: false,
            cancel: None,
        }
    }

    fn check_cancel(&self) -> Result<()> {
        match &self.cancel {
            Some(c) if c.load(std::sync::atomic::Ordering::SeqCst) => {
                Err(LmError::Cancelled("evaluation".into()))
            }
            _ => Ok(()),
        }
    }

    /// lm-eval's request encoding: trailing whitespace of the context moves to the continuation;
    /// the continuation is what encoding the whole adds after the context's own tokens; an
    /// empty context becomes the end-of-text token; too long inputs lose tokens on the left.
    fn encode_request(&self, context: &str, continuation: &str) -> Result<(Vec<u32>, Vec<u32>)> {
        let trimmed = context.trim_end();
        let moved = &context[trimmed.len()..];
        let continuation = format!("{moved}{continuation}");
        let (mut ctx, cont) = if trimmed.is_empty() {
            let start = self
                .tokenizer
                .end_ids()
                .first()
                .copied()
                .unwrap_or(self.tokenizer.pad_id());
            (vec![start], self.tokenizer.encode(&continuation, false)?)
        } else {
            let whole = self
                .tokenizer
                .encode(&format!("{trimmed}{continuation}"), self.add_special_tokens)?;
            let ctx = self.tokenizer.encode(trimmed, self.add_special_tokens)?;
            let split = ctx.len().min(whole.len());
            (whole[..split].to_vec(), whole[split..].to_vec())
        };
        if cont.is_empty() {
            return Err(LmError::Invalid(format!(
                "the continuation {continuation:?} encodes to no tokens after its context"
            )));
        }
        let limit = self.model.config.max_position_embeddings + 1;
        let total = ctx.len() + cont.len();
        if total > limit {
            let cut = (total - limit).min(ctx.len().saturating_sub(1));
            ctx.drain(..cut);
        }
        Ok((ctx, cont))
    }

    /// Scores every choice of every item.
    pub fn multiple_choice(&self, items: &[ChoiceItem]) -> Result<Vec<ChoiceResult>> {
        let mut requests = Vec::new();
        let mut owner = Vec::new();
        for (i, item) in items.iter().enumerate() {
            if item.choices.is_empty() || item.gold >= item.choices.len() {
                return Err(LmError::Invalid(format!(
                    "item {}: gold index {} with {} choices",
                    item.id,
                    item.gold,
                    item.choices.len()
                )));
            }
            for choice in &item.choices {
                requests.push(self.encode_request(&item.context, choice)?);
                owner.push(i);
            }
        }
        // Longest first, as lm-eval does, so batches hold rows of similar length.
        let mut order: Vec<usize> = (0..requests.len()).collect();
        order.sort_by_key(|&r| std::cmp::Reverse(requests[r].0.len() + requests[r].1.len()));
        let mut scores = vec![(0.0, false); requests.len()];
        let bar = self.bar(requests.len(), "multiple choice");
        let mut start = 0;
        while start < order.len() {
            self.check_cancel()?;
            let longest = requests[order[start]].0.len() + requests[order[start]].1.len();
            let rows = (self.batch_tokens / longest.max(1)).max(1);
            let chunk = &order[start..(start + rows).min(order.len())];
            let batch: Vec<(Vec<u32>, Vec<u32>)> =
                chunk.iter().map(|&r| requests[r].clone()).collect();
            let out = continuation_logliks(self.model, &batch, self.model.device())?;
            for (&r, s) in chunk.iter().zip(out) {
                scores[r] = s;
            }
            start += chunk.len();
            bar.inc(chunk.len() as u64);
        }
        bar.finish_and_clear();
        let mut next = 0;
        Ok(items
            .iter()
            .map(|item| {
                let n = item.choices.len();
                let mine = &scores[next..next + n];
                next += n;
                let log_likelihoods: Vec<f64> = mine.iter().map(|s| s.0).collect();
                let (prediction, prediction_norm) = choose(&log_likelihoods, &item.choices);
                ChoiceResult {
                    id: item.id.clone(),
                    is_greedy: mine.iter().map(|s| s.1).collect(),
                    log_likelihoods,
                    prediction,
                    prediction_norm,
                    acc: prediction == item.gold,
                    acc_norm: prediction_norm == item.gold,
                }
            })
            .collect())
    }

    /// Generates for every item and scores the filtered answers.
    pub fn generate(
        &self,
        items: &[GenerationItem],
        options: &GenerationOptions,
    ) -> Result<Vec<GenerationResult>> {
        let prompts: Vec<Vec<u32>> = items
            .iter()
            .map(|item| self.tokenizer.encode(&item.prompt, self.add_special_tokens))
            .collect::<Result<_>>()?;
        if let Some(k) = prompts.iter().position(Vec::is_empty) {
            return Err(LmError::Invalid(format!(
                "item {}: the prompt encodes to no tokens",
                items[k].id
            )));
        }
        let mut order: Vec<usize> = (0..items.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(prompts[i].len()));
        let mut outputs: Vec<Vec<u32>> = vec![Vec::new(); items.len()];
        let bar = self.bar(items.len(), "generation");
        for chunk in order.chunks(options.batch_size.max(1)) {
            self.check_cancel()?;
            let batch: Vec<Vec<u32>> = chunk.iter().map(|&i| prompts[i].clone()).collect();
            let generated = greedy_batch(
                self.model,
                &batch,
                options.max_new_tokens,
                self.tokenizer.end_ids(),
                self.tokenizer.pad_id(),
                |_, new| {
                    // Stop strings are checked on the decoded text, as lm-eval does.
                    !options.stop.is_empty()
                        && self
                            .tokenizer
                            .decode(new, true)
                            .map(|text| truncate_at_stop(&text, &options.stop).1)
                            .unwrap_or(false)
                },
            )?;
            for (&i, out) in chunk.iter().zip(generated) {
                outputs[i] = out;
            }
            bar.inc(chunk.len() as u64);
        }
        bar.finish_and_clear();
        items
            .iter()
            .zip(outputs)
            .map(|(item, tokens)| {
                let text = self.tokenizer.decode(&tokens, true)?;
                let (output, _) = truncate_at_stop(&text, &options.stop);
                let prediction = options.filter.apply(output);
                Ok(GenerationResult {
                    id: item.id.clone(),
                    correct: options.matcher.matches(&prediction, &item.reference),
                    output: output.to_string(),
                    prediction,
                    new_tokens: tokens.len(),
                })
            })
            .collect()
    }

    fn bar(&self, len: usize, what: &str) -> indicatif::ProgressBar {
        if !self.progress {
            return indicatif::ProgressBar::hidden();
        }
        let bar = indicatif::ProgressBar::new(len as u64);
        bar.set_style(
            indicatif::ProgressStyle::with_template(&format!(
                "evaluate {what} [{{bar:30}}] {{pos}}/{{len}} · {{per_sec}} · ETA {{eta}}"
            ))
            .expect("valid template")
            .progress_chars("=> "),
        );
        bar
    }
}
