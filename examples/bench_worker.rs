//! The lynx-zoo engine of `bash scripts/bench-real` (export/lynx_export/bench_real.py): one variant
//! loaded once through the library, then driven by JSON lines on stdin, one JSON line answered on
//! stdout per request (issue 16's real-size benchmark).
//!
//! ```text
//! bench_worker --zoo ZOO --variant NAME --threads T [--spin auto|on|off]   # load, print {"ready": ...}, then serve
//! bench_worker --bandwidth --threads T                  # print the memory bandwidth and exit
//! ```
//!
//! Requests (one JSON object per line):
//!
//! - `{"op": "prompt", "tokens": N}`: a question whose prompt holds exactly N text tokens (the
//!   template's included, the image placeholder's not), made by repeating one filler word; answers
//!   `{"question", "ids", "image_at", "text_tokens"}` (`ids`: the prompt's ids as the tokenizer
//!   gives them, the placeholder's token included).
//! - `{"op": "run", "question": Q, "image": PATH or null, "new_tokens": n}`: greedy, exactly n new
//!   tokens (EOS banned until then); answers the stage timings in ms, `tokens` and `prompt_ids`.
//! - `{"op": "quit"}`.
//!
//! A bad request is answered `{"error": "..."}` and the worker goes on; a variant that cannot load
//! prints `{"error": ...}` and exits 1.

use std::io::{BufRead, Write};
use std::time::Instant;

use lynx_zoo::bench::floor::Bandwidth;
use lynx_zoo::runtime::Spinning;
use lynx_zoo::{GenerationOptions, Media, Model, RuntimeOptions, Zoo};
use serde_json::{json, Value};

/// Words tried as the filler that makes a prompt of an exact length (one token each, even when
/// repeated).
const FILLERS: [&str; 8] = ["the", "a", "red", "is", "and", "of", "blue", "x"];

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => {}
        Err(e) => {
            println!("{}", json!({ "error": e }));
            std::process::exit(1);
        }
    }
}

fn flag<'a>(args: &'a [String], name: &str) -> Option<&'a str> {
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).map(String::as_str)
}

fn run(args: &[String]) -> Result<(), String> {
    let threads: usize = match flag(args, "--threads") {
        None => 1,
        Some(t) => t.parse().map_err(|_| format!("`--threads`: `{t}` is not a whole number"))?,
    };
    if args.iter().any(|a| a == "--bandwidth") {
        let bw = Bandwidth::measure(threads);
        println!("{}", serde_json::to_string(&bw).map_err(|e| e.to_string())?);
        return Ok(());
    }
    let zoo_dir = flag(args, "--zoo").ok_or("missing `--zoo ZOO`")?;
    let variant = flag(args, "--variant").ok_or("missing `--variant NAME`")?;
    let t = Instant::now();
    let zoo = Zoo::open(zoo_dir).map_err(|e| e.to_string())?;
    let spinning = match flag(args, "--spin").unwrap_or("auto") {
        "auto" => Spinning::Auto,
        "on" => Spinning::On,
        "off" => Spinning::Off,
        other => return Err(format!("`--spin {other}`: expected `auto`, `on` or `off`")),
    };
    let options = RuntimeOptions::new().with_intra_threads(threads).map_err(|e| e.to_string())?.with_spinning(spinning);
    let mut model = zoo.load(variant, &options).map_err(|e| e.to_string())?;
    let load_s = t.elapsed().as_secs_f64();
    let decoder = &model.manifest().graphs.decoder.file.path;
    let m = model.manifest();
    let ready = json!({
        "ready": true,
        "variant": m.name,
        "load_s": load_s,
        "decoder": decoder,
        "decoder_weight_bytes": model.decoder_weight_bytes(),
        "max_positions": m.model.max_positions,
        "vision": model.preprocessor().is_some(),
        "provider": format!("{:?}", model.provider()),
        "threads": threads,
        "spinning": model.spinning().to_string(),
    });
    say(&ready)?;
    let stdin = std::io::stdin();
    for line in stdin.lock().lines() {
        let line = line.map_err(|e| format!("stdin: {e}"))?;
        if line.trim().is_empty() {
            continue;
        }
        let reply = match serde_json::from_str::<Value>(&line) {
            Err(e) => json!({ "error": format!("request is not JSON ({e}): {line}") }),
            Ok(req) => match req.get("op").and_then(Value::as_str) {
                Some("quit") => break,
                Some("prompt") => prompt(&model, &req).unwrap_or_else(|e| json!({ "error": e })),
                Some("run") => ask(&mut model, &req).unwrap_or_else(|e| json!({ "error": e })),
                other => json!({ "error": format!("field `op`: {other:?} is none of prompt, run, quit") }),
            },
        };
        say(&reply)?;
    }
    Ok(())
}

fn say(v: &Value) -> Result<(), String> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{v}").and_then(|_| out.flush()).map_err(|e| format!("stdout: {e}"))
}

fn uint(req: &Value, field: &str) -> Result<usize, String> {
    req.get(field)
        .and_then(Value::as_u64)
        .map(|n| n as usize)
        .ok_or_else(|| format!("field `{field}`: missing or not a whole number in {req}"))
}

/// Text tokens of the prompt for `question` (the image placeholder's token not counted).
fn text_len(model: &Model, question: &str) -> Result<usize, String> {
    let p = model.text().prompt(question).map_err(|e| e.to_string())?;
    Ok(p.ids.len() - usize::from(p.image_at.is_some()))
}

fn prompt(model: &Model, req: &Value) -> Result<Value, String> {
    let want = uint(req, "tokens")?;
    let words = |w: &str, k: usize| vec![w; k].join(" ");
    for w in FILLERS {
        let lens = (1..=3).map(|k| text_len(model, &words(w, k))).collect::<Result<Vec<_>, _>>()?;
        if lens[1] != lens[0] + 1 || lens[2] != lens[1] + 1 {
            continue; // not one token per repeat
        }
        let base = lens[0] - 1; // the template's tokens
        if want <= base {
            return Err(format!("field `tokens`: {want} is too short: the prompt template alone holds {base} tokens"));
        }
        let question = words(w, want - base);
        let p = model.text().prompt(&question).map_err(|e| e.to_string())?;
        let got = p.ids.len() - usize::from(p.image_at.is_some());
        if got != want {
            continue;
        }
        return Ok(json!({ "question": question, "ids": p.ids, "image_at": p.image_at, "text_tokens": got }));
    }
    Err(format!("no filler word among {FILLERS:?} makes a prompt of exactly {want} tokens with this tokenizer"))
}

fn ask(model: &mut Model, req: &Value) -> Result<Value, String> {
    let question = req.get("question").and_then(Value::as_str).ok_or("field `question`: missing or not a string")?;
    let n = uint(req, "new_tokens")?;
    let media = match req.get("image") {
        None | Some(Value::Null) => Media::None,
        Some(Value::String(p)) => Media::image(p),
        Some(other) => return Err(format!("field `image`: {other} is neither a path nor null")),
    };
    let options = GenerationOptions::greedy(n)
        .with_max_new_tokens(n)
        .and_then(|o| o.with_min_new_tokens(n))
        .map_err(|e| e.to_string())?;
    let prompt_ids = model.text().prompt(question).map_err(|e| e.to_string())?.ids;
    let t = Instant::now();
    let answer = model.ask(&media, question, &options).map_err(|e| e.to_string())?;
    let wall = t.elapsed();
    let s = answer.timings;
    let ms = |d: std::time::Duration| d.as_secs_f64() * 1e3;
    Ok(json!({
        "ttft_ms": ms(s.time_to_first_token()),
        "decode_ms": ms(s.decode),
        "select_ms": ms(s.select),
        "steps": s.decode_steps,
        // one new token: a decoder step and the choice of one token (`select` chose n tokens, the
        // first from the prefill's logits)
        "step_ms": (s.decode_steps > 0)
            .then(|| ms(s.decode) / s.decode_steps as f64 + ms(s.select) / (s.decode_steps + 1) as f64),
        "stages_ms": {
            "preprocess": ms(s.preprocess), "vision": ms(s.vision), "connector": ms(s.connector),
            "tokenize": ms(s.tokenize), "prefill": ms(s.prefill), "detokenize": ms(s.detokenize),
        },
        "total_ms": ms(s.total),
        "wall_ms": ms(wall),
        "tokens": answer.tokens,
        "prompt_ids": prompt_ids,
    }))
}
