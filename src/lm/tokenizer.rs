//! A model folder's tokenizer: `tokenizer.json` through the tokenizers crate, the special
//! tokens and chat template of `tokenizer_config.json`, and the end-of-turn ids of
//! `generation_config.json`. Also trains the small byte-level BPE tokenizers of tiny models.

use std::path::Path;

use serde_json::Value as Json;
use tokenizers::models::bpe::{BpeTrainer, BPE};
use tokenizers::models::TrainerWrapper;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::SplitDelimiterBehavior;
use tokenizers::{
    AddedToken, DecoderWrapper, ModelWrapper, NormalizerWrapper, PostProcessorWrapper,
    PreTokenizerWrapper, Tokenizer, TokenizerImpl,
};

use super::template::ChatTemplate;
use super::{LmError, Result};

/// Files of a model folder that belong to its tokenizer, copied with fine-tuned weights.
pub const TOKENIZER_FILES: [&str; 8] = [
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "generation_config.json",
    "vocab.json",
    "merges.txt",
    "tokenizer.model",
    "added_tokens.json",
];

/// Text to token ids and back, with the model's chat template and special tokens.
pub struct TextTokenizer {
    inner: Tokenizer,
    template: Option<ChatTemplate>,
    bos_token: Option<String>,
    eos_token: Option<String>,
    end_ids: Vec<u32>,
    pad_id: u32,
}

fn config_error(path: &Path, message: impl std::fmt::Display) -> LmError {
    LmError::Config {
        place: path.display().to_string(),
        message: message.to_string(),
    }
}

fn read_json(path: &Path) -> Result<Option<Json>> {
    match std::fs::read_to_string(path) {
        Ok(text) => serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| config_error(path, format!("not valid JSON: {e}"))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(config_error(path, e)),
    }
}

/// A special token as tokenizer_config.json writes it: a string or `{"content": ...}`.
fn token_text(value: Option<&Json>) -> Option<String> {
    match value? {
        Json::String(s) => Some(s.clone()),
        Json::Object(map) => map.get("content")?.as_str().map(String::from),
        _ => None,
    }
}

/// The template source: a string, or a list of named templates of which `default` is used.
fn template_source(value: Option<&Json>, path: &Path) -> Result<Option<String>> {
    match value {
        None | Some(Json::Null) => Ok(None),
        Some(Json::String(s)) => Ok(Some(s.clone())),
        Some(Json::Array(list)) => {
            let named = |name: &str| {
                list.iter().find_map(|t| {
                    (t.get("name")?.as_str()? == name)
                        .then(|| t.get("template")?.as_str().map(String::from))
                        .flatten()
                })
            };
            named("default").map(Some).ok_or_else(|| {
                config_error(path, "chat_template is a list without a `default` template")
            })
        }
        Some(_) => Err(config_error(
            path,
            "chat_template must be a string or a list of named templates",
        )),
    }
}

impl TextTokenizer {
    /// Loads the tokenizer of the model folder `dir`.
    pub fn load(dir: &Path) -> Result<Self> {
        super::files::model_folder(dir)?;
        let path = dir.join("tokenizer.json");
        if !path.exists() {
            return Err(config_error(
                &path,
                "missing: a model folder needs its tokenizer.json",
            ));
        }
        let inner = Tokenizer::from_file(&path).map_err(|e| config_error(&path, e))?;
        let config_path = dir.join("tokenizer_config.json");
        let config = read_json(&config_path)?.unwrap_or(Json::Null);
        let bos_token = token_text(config.get("bos_token"));
        let eos_token = token_text(config.get("eos_token"));
        let pad_token = token_text(config.get("pad_token"));
        let template = template_source(config.get("chat_template"), &config_path)?
            .map(|source| {
                ChatTemplate::new(
                    &source,
                    bos_token.as_deref().unwrap_or(""),
                    eos_token.as_deref().unwrap_or(""),
                    &config_path.display().to_string(),
                )
            })
            .transpose()?;

        // Generation ends at the tokenizer's eos and at every id generation_config lists
        // (Llama 3 lists <|end_of_text|>, <|eom_id|> and <|eot_id|>).
        let mut end_ids: Vec<u32> = eos_token
            .as_deref()
            .and_then(|t| inner.token_to_id(t))
            .into_iter()
            .collect();
        let generation_path = dir.join("generation_config.json");
        if let Some(generation) = read_json(&generation_path)? {
            match generation.get("eos_token_id") {
                Some(Json::Number(n)) => end_ids.extend(n.as_u64().map(|v| v as u32)),
                Some(Json::Array(list)) => {
                    end_ids.extend(list.iter().filter_map(|v| v.as_u64().map(|v| v as u32)))
                }
                _ => {}
            }
        }
        end_ids.sort_unstable();
        end_ids.dedup();
        let pad_id = pad_token
            .as_deref()
            .or(eos_token.as_deref())
            .and_then(|t| inner.token_to_id(t))
            .or_else(|| end_ids.first().copied())
            .unwrap_or(0);
        Ok(Self {
            inner,
            template,
            bos_token,
            eos_token,
            end_ids,
            pad_id,
        })
    }

    /// Token ids of `text`; `add_special_tokens` applies the tokenizer's post-processor
    /// (e.g. Llama's BOS). Text rendered by a chat template already holds its special tokens.
    pub fn encode(&self, text: &str, add_special_tokens: bool) -> Result<Vec<u32>> {
        let encoding = self
            .inner
            .encode_fast(text, add_special_tokens)
            .map_err(|e| LmError::Invalid(format!("cannot tokenize text: {e}")))?;
        Ok(encoding.get_ids().to_vec())
    }

    pub fn decode(&self, ids: &[u32], skip_special_tokens: bool) -> Result<String> {
        self.inner
            .decode(ids, skip_special_tokens)
            .map_err(|e| LmError::Invalid(format!("cannot decode token ids: {e}")))
    }

    /// The chat template, or an error saying the folder has none.
    pub fn chat_template(&self) -> Result<&ChatTemplate> {
        self.template.as_ref().ok_or_else(|| {
            LmError::Invalid(
                "the model's tokenizer_config.json has no chat_template; pass plain prompts \
                 (chat_template: false) or add one"
                    .into(),
            )
        })
    }

    pub fn has_chat_template(&self) -> bool {
        self.template.is_some()
    }

    /// Ids that end a generation.
    pub fn end_ids(&self) -> &[u32] {
        &self.end_ids
    }

    /// The id that pads batches (never attended to).
    pub fn pad_id(&self) -> u32 {
        self.pad_id
    }

    /// The token lm-eval conditions an empty context on (its `prefix_token_id`): the BOS
    /// token, else the EOS token (both as tokenizer_config.json names them), else the first
    /// end id.
    pub fn prefix_token_id(&self) -> u32 {
        let id = |t: &Option<String>| t.as_deref().and_then(|t| self.inner.token_to_id(t));
        id(&self.bos_token)
            .or_else(|| id(&self.eos_token))
            .or_else(|| self.end_ids.first().copied())
            .unwrap_or(self.pad_id)
    }

    pub fn bos_token(&self) -> Option<&str> {
        self.bos_token.as_deref()
    }

    pub fn eos_token(&self) -> Option<&str> {
        self.eos_token.as_deref()
    }

    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    /// Vocabulary size including added tokens.
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }
}

/// The split pattern of Qwen2's tokenizer.json (contractions, letter runs, single digits,
/// punctuation runs, newlines, spaces).
const QWEN2_SPLIT: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// Trains a byte-level BPE tokenizer (GPT-2/Qwen style: every byte is a base symbol, so no
/// text is ever unknown) of at most `vocab_size` tokens on `texts`, with `special_tokens`
/// first in the vocabulary and never split. Writes it to `path` as tokenizer.json.
pub fn train_byte_level_bpe(
    texts: &[String],
    vocab_size: usize,
    special_tokens: &[&str],
    path: &Path,
) -> Result<()> {
    if texts.iter().all(|t| t.is_empty()) {
        return Err(LmError::Invalid(
            "a tokenizer needs some training text; all texts are empty".into(),
        ));
    }
    let minimum = 256 + special_tokens.len();
    if vocab_size < minimum {
        return Err(LmError::Invalid(format!(
            "vocab_size {vocab_size} is below the {minimum} tokens of the byte alphabet and the \
             special tokens"
        )));
    }
    let trainer = BpeTrainer::builder()
        .vocab_size(vocab_size)
        .min_frequency(2)
        .show_progress(false)
        .special_tokens(
            special_tokens
                .iter()
                .map(|t| AddedToken::from(t.to_string(), true))
                .collect(),
        )
        .initial_alphabet(ByteLevel::alphabet().into_iter().collect())
        .build();
    let mut tokenizer: TokenizerImpl<
        ModelWrapper,
        NormalizerWrapper,
        PreTokenizerWrapper,
        PostProcessorWrapper,
        DecoderWrapper,
    > = TokenizerImpl::new(ModelWrapper::BPE(BPE::default()));
    // Qwen2's pre-tokenization: words, single digits (so numbers are read digit by digit, which
    // arithmetic needs), punctuation runs and whitespace, then bytes to symbols.
    let split = Split::new(
        SplitPattern::Regex(QWEN2_SPLIT.into()),
        SplitDelimiterBehavior::Isolated,
        false,
    )
    .map_err(|e| LmError::Invalid(format!("pre-tokenizer pattern: {e}")))?;
    let byte_level = ByteLevel::new(false, false, false);
    tokenizer.with_pre_tokenizer(Some(PreTokenizerWrapper::Sequence(Sequence::new(vec![
        PreTokenizerWrapper::Split(split),
        PreTokenizerWrapper::ByteLevel(byte_level),
    ]))));
    tokenizer.with_decoder(Some(DecoderWrapper::ByteLevel(byte_level)));
    tokenizer.with_post_processor(Some(PostProcessorWrapper::ByteLevel(byte_level)));
    let mut trainer = TrainerWrapper::BpeTrainer(trainer);
    tokenizer
        .train(&mut trainer, texts.iter())
        .map_err(|e| LmError::Invalid(format!("tokenizer training failed: {e}")))?;
    tokenizer
        .save(path, true)
        .map_err(|e| config_error(path, e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn corpus() -> Vec<String> {
        (0..200)
            .map(|i| {
                format!(
                    "Question {i}: what is {i} plus {}? Answer: {}",
                    i % 7,
                    i + i % 7
                )
            })
            .collect()
    }

    fn folder(dir: &Path, config: &str, generation: Option<&str>) {
        train_byte_level_bpe(
            &corpus(),
            400,
            &["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
            &dir.join("tokenizer.json"),
        )
        .unwrap();
        std::fs::write(dir.join("tokenizer_config.json"), config).unwrap();
        if let Some(g) = generation {
            std::fs::write(dir.join("generation_config.json"), g).unwrap();
        }
    }

    #[test]
    fn trained_bpe_round_trips_any_text_and_keeps_specials_whole() {
        let dir = tempfile::tempdir().unwrap();
        folder(
            dir.path(),
            r#"{"eos_token": "<|im_end|>", "pad_token": "<|endoftext|>"}"#,
            None,
        );
        let tok = TextTokenizer::load(dir.path()).unwrap();
        assert!(
            tok.vocab_size() <= 400 && tok.vocab_size() > 259,
            "{}",
            tok.vocab_size()
        );
        assert_eq!(tok.token_to_id("<|endoftext|>"), Some(0));
        let text = "Question 12: what is 12 plus 5? Ünïcödé ✓ never seen";
        let ids = tok.encode(text, false).unwrap();
        assert_eq!(tok.decode(&ids, false).unwrap(), text);
        // Merges learned from the corpus make frequent words shorter than their bytes.
        assert!(tok.encode("Question", false).unwrap().len() == 1);
        // Digits are never merged: 2024 is four tokens.
        let digits = tok.encode("2024", false).unwrap();
        assert_eq!(digits.len(), 4, "{digits:?}");
        let ids = tok.encode("a<|im_end|>b", false).unwrap();
        assert_eq!(ids[1], tok.token_to_id("<|im_end|>").unwrap());
        assert_eq!(tok.end_ids(), &[2]);
        assert_eq!(tok.pad_id(), 0);
        assert!(!tok.has_chat_template());
        assert!(tok.chat_template().is_err());
    }

    #[test]
    fn config_forms_of_special_tokens_templates_and_end_ids() {
        let dir = tempfile::tempdir().unwrap();
        folder(
            dir.path(),
            r#"{"bos_token": {"content": "<|im_start|>", "special": true}, "eos_token": null,
                "chat_template": [{"name": "tool_use", "template": "x"},
                                  {"name": "default", "template": "{{ bos_token }}{{ messages[0].content }}"}]}"#,
            Some(r#"{"eos_token_id": [2, 0]}"#),
        );
        let tok = TextTokenizer::load(dir.path()).unwrap();
        assert_eq!(tok.bos_token(), Some("<|im_start|>"));
        assert_eq!(tok.end_ids(), &[0, 2]);
        let text = tok
            .chat_template()
            .unwrap()
            .render(&[super::super::template::Message::user("hi")], false, &[])
            .unwrap();
        assert_eq!(text, "<|im_start|>hi");
    }

    #[test]
    fn bad_folders_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let err = TextTokenizer::load(dir.path()).err().unwrap().to_string();
        assert!(
            err.contains("tokenizer.json") && err.contains("missing"),
            "{err}"
        );
        std::fs::write(dir.path().join("tokenizer.json"), "{not json").unwrap();
        let err = TextTokenizer::load(dir.path()).err().unwrap().to_string();
        assert!(err.contains("tokenizer.json"), "{err}");
        folder(dir.path(), "{\"chat_template\": 3", None);
        let err = TextTokenizer::load(dir.path()).err().unwrap().to_string();
        assert!(
            err.contains("tokenizer_config.json") && err.contains("JSON"),
            "{err}"
        );
        assert!(train_byte_level_bpe(&corpus(), 100, &[], &dir.path().join("t.json")).is_err());
    }
}
