//! An imported folder's tokenizer and prompt: `tokenizer.json`, the special tokens of
//! `tokenizer_config.json` and the layout's configuration, and the chat template rendered for
//! one user turn as the manifest's `prompt.template`.
//!
//! The reference is what a transformers user gets from the same folder:
//! `tokenizer.apply_chat_template([{"role": "user", "content": question}],
//! add_generation_prompt=True)` renders the template (Jinja with `trim_blocks` and
//! `lstrip_blocks`) and encodes the text without the tokenizer's own special tokens, so a BOS is in
//! the prompt exactly when the template writes it: the manifest says `add_bos: false` and the
//! runtime, which also encodes without special tokens, gets the same ids. Without a chat template
//! (or with `--template`) the reference is `tokenizer(text)`, with its special tokens: one leading
//! token more than the plain encoding is `add_bos: true` with that token, as in
//! `python -m lynx_export import hf`.

use std::path::{Path, PathBuf};

use minijinja::{Environment, ErrorKind};

use crate::error::{Error, Result};

/// Where a chat template may be, in the order transformers' tokenizer reads them.
pub const CHAT_TEMPLATE_FILES: [&str; 3] = ["chat_template.jinja", "chat_template.json", "tokenizer_config.json"];

/// The question's stand-in while the template renders (letters only: no template escapes them).
const SENTINEL: &str = "lynxzooquestion";

/// A question used to compare encodings.
const SAMPLE: &str = "what is in the picture?";

/// The special token ids the layout's configuration names (genai_config.json `model.*_token_id`,
/// config.json / generation_config.json for Optimum).
#[derive(Debug, Clone, Default)]
pub struct SpecialIds {
    /// BOS id.
    pub bos: Option<i64>,
    /// Every id generation stops at.
    pub eos: Vec<i64>,
    /// Padding id.
    pub pad: Option<i64>,
    /// The file they come from, for messages.
    pub source: PathBuf,
}

/// The manifest's `tokenizer` (without path and checksum) and `prompt`, and what was read.
#[derive(Debug, Clone)]
pub struct TextSpec {
    /// `tokenizer.bos`.
    pub bos: String,
    /// `tokenizer.eos`: where the runtime stops.
    pub eos: String,
    /// `tokenizer.pad`.
    pub pad: String,
    /// `prompt.template`.
    pub template: String,
    /// `prompt.add_bos`.
    pub add_bos: bool,
    /// Every stop id of the source (the runtime stops at `eos` only).
    pub eos_ids: Vec<i64>,
    /// Tokens in the tokenizer, added tokens included.
    pub vocab_len: usize,
    /// Files read (for the manifest's provenance).
    pub files: Vec<PathBuf>,
    /// What differs from the source, for provenance and the log.
    pub notes: Vec<String>,
}

fn json(path: &Path) -> Result<serde_json::Value> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io("reading", path, e))?;
    serde_json::from_str(&text).map_err(|e| Error::import(path, None, format!("is not valid JSON ({e})")))
}

/// A token of tokenizer_config.json: a string, or `{"content": ...}` (an `AddedToken`).
fn token_text(v: Option<&serde_json::Value>) -> Option<String> {
    match v? {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Object(o) => o.get("content").and_then(|c| c.as_str()).map(str::to_string),
        _ => None,
    }
}

/// The chat template and the file it was found in, as transformers finds it.
pub fn chat_template(folder: &Path) -> Result<Option<(String, PathBuf)>> {
    for name in CHAT_TEMPLATE_FILES {
        let path = folder.join(name);
        if !path.is_file() {
            continue;
        }
        if name.ends_with(".jinja") {
            let text = std::fs::read_to_string(&path).map_err(|e| Error::io("reading", &path, e))?;
            return Ok(Some((text, path)));
        }
        let doc = json(&path)?;
        let template = match doc.get("chat_template") {
            Some(serde_json::Value::String(s)) => Some(s.clone()),
            // Named templates: the default one.
            Some(serde_json::Value::Array(list)) => list
                .iter()
                .find(|t| t.get("name").and_then(|n| n.as_str()) == Some("default"))
                .and_then(|t| t.get("template"))
                .and_then(|t| t.as_str())
                .map(str::to_string),
            _ => None,
        };
        if let Some(t) = template.filter(|t| !t.trim().is_empty()) {
            return Ok(Some((t, path)));
        }
    }
    Ok(None)
}

/// The chat template rendered as transformers renders it for one user turn holding `content`,
/// with the assistant's turn to answer (`add_generation_prompt`).
pub fn render_chat(template: &str, content: &str, tokens: [(&str, &str); 4]) -> std::result::Result<String, String> {
    let mut env = Environment::new();
    env.set_syntax(
        minijinja::syntax::SyntaxConfig::builder()
            .trim_blocks(true)
            .lstrip_blocks(true)
            .build()
            .map_err(|e| e.to_string())?,
    );
    env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
    env.add_function("raise_exception", |message: String| -> std::result::Result<String, minijinja::Error> {
        Err(minijinja::Error::new(ErrorKind::InvalidOperation, format!("the template raised: {message}")))
    });
    let message = minijinja::context! { role => "user", content => content };
    let [(_, bos), (_, eos), (_, pad), (_, unk)] = tokens;
    let ctx = minijinja::context! {
        messages => vec![message],
        add_generation_prompt => true,
        bos_token => bos,
        eos_token => eos,
        pad_token => pad,
        unk_token => unk,
    };
    env.render_str(template, ctx).map_err(|e| {
        let mut text = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            text.push_str(&format!(": {s}"));
            source = s.source();
        }
        text
    })
}

/// Reads the tokenizer and the prompt of `folder`. `specials` are the ids the layout's
/// configuration names; `template` replaces the chat template (it must hold `{question}` once).
pub fn text_spec(folder: &Path, specials: &SpecialIds, template: Option<&str>) -> Result<TextSpec> {
    let tok_path = folder.join("tokenizer.json");
    if !tok_path.is_file() {
        return Err(Error::import(
            &tok_path,
            None,
            "missing: the runtime reads a Hugging Face tokenizer.json; copy it (and tokenizer_config.json) from the \
             checkpoint the model was exported from",
        ));
    }
    let tok = tokenizers::Tokenizer::from_file(&tok_path)
        .map_err(|e| Error::import(&tok_path, None, format!("cannot be read as a tokenizer ({e})")))?;
    let mut files = vec![tok_path.clone()];
    let mut notes = Vec::new();
    let config_path = folder.join("tokenizer_config.json");
    let config = if config_path.is_file() {
        files.push(config_path.clone());
        json(&config_path)?
    } else {
        serde_json::Value::Null
    };
    let name_of = |id: Option<i64>| id.and_then(|i| u32::try_from(i).ok()).and_then(|i| tok.id_to_token(i));
    let config_bos = token_text(config.get("bos_token"));
    let config_eos = token_text(config.get("eos_token"));
    let config_pad = token_text(config.get("pad_token"));
    let config_unk = token_text(config.get("unk_token"));

    // EOS: the tokenizer's when it is among the source's stop ids (or there are none), else the
    // first stop id (as `python -m lynx_export import hf`).
    let tok_eos_id = config_eos.as_deref().and_then(|t| tok.token_to_id(t)).map(i64::from);
    let mut eos_ids = specials.eos.clone();
    if let Some(id) = tok_eos_id {
        if eos_ids.is_empty() || eos_ids.contains(&id) {
            eos_ids.retain(|&i| i != id);
            eos_ids.insert(0, id);
        }
    }
    let Some(eos) = eos_ids.first().and_then(|&id| name_of(Some(id))) else {
        return Err(Error::import(
            &specials.source,
            Some("eos_token_id"),
            format!(
                "no end-of-sequence token: neither this file nor {} names one that tokenizer.json has",
                config_path.display()
            ),
        ));
    };
    if eos_ids.len() > 1 {
        notes.push(format!(
            "the source stops at any of {eos_ids:?}; the runtime stops at `{eos}` ({}) only",
            eos_ids[0]
        ));
    }
    let bos_text = config_bos.clone().or_else(|| name_of(specials.bos));
    let pad = config_pad.or_else(|| name_of(specials.pad)).unwrap_or_else(|| eos.clone());

    let encode = |text: &str, special: bool| -> Result<Vec<u32>> {
        tok.encode(text, special)
            .map(|e| e.get_ids().to_vec())
            .map_err(|e| Error::import(&tok_path, None, format!("cannot encode a prompt ({e})")))
    };
    let found = if template.is_some() { None } else { chat_template(folder)? };
    let (template, add_bos, bos) = match (template, found) {
        (None, Some((body, path))) => {
            files.push(path.clone());
            let tokens = [
                ("bos_token", bos_text.as_deref().unwrap_or("")),
                ("eos_token", config_eos.as_deref().unwrap_or(eos.as_str())),
                ("pad_token", pad.as_str()),
                ("unk_token", config_unk.as_deref().unwrap_or("")),
            ];
            let text = render_chat(&body, SENTINEL, tokens).map_err(|e| {
                Error::import(
                    &path,
                    Some("chat_template"),
                    format!("cannot be rendered for one user turn ({e}); pass the prompt with --template \"...{{question}}...\""),
                )
            })?;
            if text.matches(SENTINEL).count() != 1 {
                return Err(Error::import(
                    &path,
                    Some("chat_template"),
                    format!(
                        "rendering one user turn gave `{}`, which does not hold the question once; pass the prompt with \
                         --template",
                        text.escape_debug()
                    ),
                ));
            }
            notes.push(format!(
                "prompt from {}",
                path.file_name().map_or_else(String::new, |n| n.to_string_lossy().into())
            ));
            // apply_chat_template encodes without special tokens: BOS only where the template writes it.
            (text.replace(SENTINEL, "{question}"), false, bos_text)
        }
        (given, _) => {
            let template = match given {
                Some(t) => {
                    notes.push("prompt from --template".to_string());
                    t.to_string()
                }
                None => {
                    notes.push("no chat template: the prompt is the question alone".to_string());
                    "{question}".to_string()
                }
            };
            if template.matches("{question}").count() != 1 {
                return Err(Error::InvalidArgument {
                    what: "--template",
                    value: template,
                    expected: "a prompt holding `{question}` exactly once".into(),
                });
            }
            let sample = template.replace("{question}", SAMPLE);
            let (want, plain) = (encode(&sample, true)?, encode(&sample, false)?);
            if want == plain {
                (template, false, bos_text)
            } else if want.len() == plain.len() + 1 && want[1..] == plain[..] {
                (template, true, tok.id_to_token(want[0]))
            } else {
                return Err(Error::import(
                    &tok_path,
                    Some("post_processor"),
                    format!(
                        "adds {want:?} around the plain encoding {plain:?}: more than one token before it, which the \
                         runtime's `prompt.add_bos` cannot reproduce"
                    ),
                ));
            }
        }
    };
    // No BOS at all (Qwen2): add_bos is false and the field only has to name a token.
    let bos = bos.unwrap_or_else(|| eos.clone());
    for (field, token) in [("bos", &bos), ("eos", &eos), ("pad", &pad)] {
        if tok.token_to_id(token).is_none() {
            return Err(Error::import(
                &tok_path,
                Some(field),
                format!("the {field} token `{token}` is not in the tokenizer's vocabulary"),
            ));
        }
    }
    Ok(TextSpec { bos, eos, pad, template, add_bos, eos_ids, vocab_len: tok.get_vocab_size(true), files, notes })
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKENS: [(&str, &str); 4] =
        [("bos_token", "<s>"), ("eos_token", "</s>"), ("pad_token", ""), ("unk_token", "")];

    #[test]
    fn renders_chat_templates_as_transformers_does() {
        // ChatML with Python string methods and trim_blocks / lstrip_blocks.
        let chatml = "{% for m in messages %}\n<|im_start|>{{ m['role'] }}\n{{ m['content'].strip() }}<|im_end|>\n{% endfor %}\n{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}";
        assert_eq!(
            render_chat(chatml, " q ", TOKENS).unwrap(),
            "<|im_start|>user\nq<|im_end|>\n<|im_start|>assistant\n"
        );
        let llama = "{{ bos_token }}{% for m in messages %}{{ m['role'].upper() + ': ' + m['content'] }}\n{% endfor %}{% if add_generation_prompt %}ASSISTANT:{% endif %}";
        assert_eq!(render_chat(llama, "q", TOKENS).unwrap(), "<s>USER: q\nASSISTANT:");
        let raising = "{{ raise_exception('only user and assistant roles') }}";
        assert!(render_chat(raising, "q", TOKENS).unwrap_err().contains("only user and assistant roles"));
    }
}
