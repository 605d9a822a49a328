//! The evaluator: lm-eval-harness's two request types over whole item lists, with per-item
//! outputs kept. Multiple choice scores each choice by its summed log-likelihood after the
//! context (`acc`, and `acc_norm` per character); generation decodes greedily until a stop
//! string, the end token or the token limit, filters the answer out with a regex and compares
//! it with `exact_match`.

use super::answers::{choose, python_rstrip, truncate_at_stop, AnswerFilter, ExactMatch};
use super::score::{continuation_logliks, greedy_batch};
use super::tokenizer::TextTokenizer;
use super::{Decoder, LmError, Result};

/// A multiple-choice item: each choice continues the context after `delimiter` (lm-eval's
/// `target_delimiter`, usually a space): the continuation scored is `delimiter + choice`,
/// while `acc_norm` divides by the length of the choice alone, as lm-eval does.
#[derive(Debug, Clone, PartialEq)]
pub struct ChoiceItem {
    pub id: String,
    pub context: String,
    pub delimiter: String,
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
    /// Whether text gets the tokenizer's special tokens (e.g. Llama's BOS) where lm-eval's
    /// default gives them: text that does not already start with the BOS (or prefix) token.
    pub add_special_tokens: bool,
    /// Token budget of one scoring batch (rows x longest row).
    pub batch_tokens: usize,
    pub progress: bool,
    /// Checked between batches: when set, the evaluation stops with `LmError::Cancelled`.
    pub cancel: crate::cancel::Cancel,
    /// The prefix token's text (BOS, else EOS), for lm-eval's special-token rule.
    prefix_text: String,
}

impl<'a> Evaluator<'a> {
    pub fn new(model: &'a Decoder, tokenizer: &'a TextTokenizer) -> Self {
        // Decoded once: every request's encoding asks whether its text starts with it.
        let prefix_text = tokenizer
            .decode(&[tokenizer.prefix_token_id()], false)
            .unwrap_or_default();
        Self {
            model,
            tokenizer,
            add_special_tokens: true,
            batch_tokens: 8192,
            progress: false,
            cancel: Default::default(),
            prefix_text,
        }
    }

    fn check_cancel(&self) -> Result<()> {
        if self.cancel.is_set() {
            return Err(LmError::Cancelled("evaluation".into()));
        }
        Ok(())
    }

    /// lm-eval's `tok_encode`: the tokenizer's special tokens (a Llama BOS), unless the text
    /// already starts with the prefix token's text (a rendered chat template holds its own).
    fn encode_text(&self, text: &str) -> Result<Vec<u32>> {
        let starts_with_prefix =
            !self.prefix_text.is_empty() && text.starts_with(&self.prefix_text);
        self.tokenizer
            .encode(text, self.add_special_tokens && !starts_with_prefix)
    }

    /// lm-eval's request encoding (`loglikelihood` and `_encode_pair`): an empty context is the
    /// prefix token (BOS, else EOS) before the continuation encoded alone, unless the
    /// continuation itself starts with that token, which then serves as the context. Otherwise
    /// trailing white space of the context (Python's `rstrip`) moves to the continuation, and
    /// the continuation is what encoding the whole adds after the context's own tokens. Too
    /// long inputs lose tokens on the left.
    fn encode_request(&self, context: &str, continuation: &str) -> Result<(Vec<u32>, Vec<u32>)> {
        let (mut ctx, cont) = if context.is_empty() {
            let cont = self.tokenizer.encode(continuation, false)?;
            let prefix = self.tokenizer.prefix_token_id();
            match cont.split_first() {
                Some((&first, rest)) if first == prefix => (vec![first], rest.to_vec()),
                _ => (vec![prefix], cont),
            }
        } else {
            let trimmed = python_rstrip(context);
            let continuation = format!("{}{continuation}", &context[trimmed.len()..]);
            let whole = self.encode_text(&format!("{trimmed}{continuation}"))?;
            let ctx = self.encode_text(trimmed)?;
            let split = ctx.len().min(whole.len());
            let (ctx, cont) = (whole[..split].to_vec(), whole[split..].to_vec());
            // A white-space-only context of a tokenizer without BOS encodes to nothing, which
            // lm-eval cannot score (an assertion fails there); condition on the prefix token.
            if ctx.is_empty() {
                (vec![self.tokenizer.prefix_token_id()], cont)
            } else {
                (ctx, cont)
            }
        };
        if cont.is_empty() {
            return Err(LmError::Invalid(format!(
                "the continuation {continuation:?} encodes to no tokens after its context {context:?}"
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
                let continuation = format!("{}{choice}", item.delimiter);
                requests.push(self.encode_request(&item.context, &continuation)?);
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
        // lm-eval's `tok_batch_encode`: special tokens unless the prompt starts with BOS.
        let bos = self.tokenizer.bos_token().filter(|b| !b.is_empty());
        let prompts: Vec<Vec<u32>> = items
            .iter()
            .map(|item| {
                let special =
                    self.add_special_tokens && !bos.is_some_and(|b| item.prompt.starts_with(b));
                self.tokenizer.encode(&item.prompt, special)
            })
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lm::tiny::{create_tiny_model, TinySpec};
    use candle_core::{DType, Device};

    fn tiny(dir: &std::path::Path) -> (Decoder, TextTokenizer) {
        let texts: Vec<String> = (0..40)
            .map(|k| format!("Question {k}? Answer: a{k} bb"))
            .collect();
        let spec = TinySpec {
            vocab_size: 300,
            hidden_size: 32,
            num_hidden_layers: 1,
            num_attention_heads: 2,
            num_key_value_heads: 1,
            intermediate_size: 64,
            max_position_embeddings: 64,
            seed: 11,
        };
        create_tiny_model(dir, &texts, &spec).unwrap();
        let (model, _) = crate::lm::files::load(dir, DType::F32, &Device::Cpu).unwrap();
        (model, TextTokenizer::load(dir).unwrap())
    }

    /// lm-eval's `loglikelihood` and `_encode_pair` (lm_eval/api/model.py), by hand.
    #[test]
    fn requests_are_encoded_as_lm_eval_encodes_them() {
        let tmp = tempfile::tempdir().unwrap();
        let (model, tokenizer) = tiny(tmp.path());
        let evaluator = Evaluator::new(&model, &tokenizer);
        // The prefix token: no BOS in this tokenizer, so its EOS `<|im_end|>` (id 2), not the
        // first end id (0, `<|endoftext|>`).
        assert_eq!(tokenizer.prefix_token_id(), 2);
        let enc = |t: &str| tokenizer.encode(t, false).unwrap();
        // An empty context: the prefix token, then the continuation encoded alone.
        assert_eq!(
            evaluator.encode_request("", " a1").unwrap(),
            (vec![2], enc(" a1"))
        );
        // ... unless the continuation starts with the prefix token, which becomes the context.
        let (ctx, cont) = evaluator.encode_request("", "<|im_end|> a1").unwrap();
        assert_eq!((ctx, cont), (vec![2], enc(" a1")));
        // Trailing white space (Python's: \x1c counts) moves to the continuation.
        let (ctx, cont) = evaluator.encode_request("Answer:\u{1c} ", "a1").unwrap();
        assert_eq!(ctx, enc("Answer:"));
        let whole = enc("Answer:\u{1c} a1");
        assert_eq!([ctx.clone(), cont].concat(), whole);
        // A white-space-only context encodes to nothing here: the prefix token stands in.
        let (ctx, cont) = evaluator.encode_request("  ", "a1").unwrap();
        assert_eq!((ctx, cont), (vec![2], enc("  a1")));
    }

    /// lm-eval's acc_norm (lm_eval/api/task.py process_results): the log-likelihood of
    /// `delimiter + choice` divided by the length of the choice alone.
    #[test]
    fn acc_norm_divides_by_the_choice_without_its_delimiter() {
        let tmp = tempfile::tempdir().unwrap();
        let (model, tokenizer) = tiny(tmp.path());
        let evaluator = Evaluator::new(&model, &tokenizer);
        let choices: Vec<String> = ["a", "bb", "a1 bb", "Ünïcødé", "b"]
            .map(String::from)
            .to_vec();
        let item = ChoiceItem {
            id: "q".into(),
            context: "Question 3? Answer:".into(),
            delimiter: " ".into(),
            choices: choices.clone(),
            gold: 1,
        };
        let got = evaluator
            .multiple_choice(std::slice::from_ref(&item))
            .unwrap();
        // The delimiter is scored with each choice.
        let spaced = ChoiceItem {
            delimiter: String::new(),
            choices: choices.iter().map(|c| format!(" {c}")).collect(),
            ..item.clone()
        };
        let same = evaluator.multiple_choice(&[spaced]).unwrap();
        assert_eq!(got[0].log_likelihoods, same[0].log_likelihoods);
        let ll = &got[0].log_likelihoods;
        let by_char: Vec<f64> = (0..choices.len())
            .map(|k| ll[k] / choices[k].chars().count() as f64)
            .collect();
        let best = (0..by_char.len()).fold(0, |b, k| if by_char[k] > by_char[b] { k } else { b });
        assert_eq!(got[0].prediction_norm, best);
        assert_eq!(got[0].acc_norm, best == 1);
    }
}
