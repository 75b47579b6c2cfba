//! A loaded variant: vision encoder -> connector -> decoder, and `ask`.
//!
//! The sequence the decoder sees follows docs/contract.md section 2. For a prefix connector
//! (resampler, projector), per row of a left-padded batch:
//!
//! ```text
//! [pad ... pad][visual_embeds (V)][embed(<s> + prompt)]      inputs_embeds (B, V + L, D)
//!  mask 0       mask 1             mask 1                     attention_mask (B, V + L)
//! position_ids = cumsum(mask) - 1, clamped at 0
//! ```
//!
//! A right-padded batch (`prompt.padding: right`, the zoo's GroupQueryAttention decoders) keeps
//! the padding after each row, `[visual_embeds][embed(<s> + prompt)][pad ... pad]`, and the
//! decoder reads each row's logits at its own last position.
//!
//! That is the prefix layout. With an image placeholder in the template (the placeholder layout,
//! LLaVA's `<image>`), the visual tokens take the placeholder's place instead
//! ([`splice_visual`]): `[pad][embed(<s> + text before)][visual_embeds][embed(text after)]`,
//! with the same mask and position rule. The prefix layout is the placeholder layout with the
//! picture before the first token.
//!
//! A cross-attention variant has no visual positions; its connector's `cross_key_values.*`
//! (B, heads, memory, head_dim) are computed once per sample and fed to every decoder step. A
//! variant without vision (`vision_input: none`) has neither. Images are videos of one frame:
//! `vision` runs on (B x F) images, reshaped to (B, F, patches, vision_dim) for the connector
//! (Lynx `concate`).
//!
//! # The matched blind control
//!
//! A `vision_input: blank` variant has the same graphs as its `picture` twin, and sees the blank
//! picture ([`crate::preprocess::blank_picture`]) in place of every image and video frame. The
//! swap happens here, in [`Model::pixels`] (which [`Model::ask`] and [`Model::ask_batch`] use) and
//! in [`Model::prefill_logits`], so every caller -- `ask`, `eval`, `bench`, `compare` and library
//! users -- gets it: the media are read and preprocessed as for `picture` (a bad file fails alike,
//! and the preprocess stage costs the same), then each frame is replaced by the blank picture's
//! pixels, and the vision graph and connector run on those. The control is so matched in latency
//! too.
//!
//! # Threads
//!
//! [`Model`] is `Send + Sync`. ONNX Runtime sessions are run by one caller at a time (`ort` 2.0's
//! `Session::run` takes `&mut self`), so [`Model::ask`] takes `&mut self`: to answer from several
//! threads, load one `Model` per thread (sessions are small next to the shared weights' page cache),
//! or put one behind a `Mutex`, or batch questions with [`Model::ask_batch`].

pub mod cache;
pub mod features;

use std::time::{Duration, Instant};

use ndarray::{
    concatenate, s, Array2, Array3, Array4, ArrayD, ArrayView3, ArrayView4, Axis, CowArray, Ix3, Ix4, IxDyn,
};

use crate::error::{Error, Result};
use crate::generate::{generate, GenerationOptions, SpecialTokens};
use crate::manifest::tensors::{
    CROSS_PREFIX, IMAGE_FEATURES, INPUTS_EMBEDS, INPUT_IDS, LOGITS, PIXEL_VALUES, VISUAL_EMBEDS,
};
use crate::manifest::{
    ConnectorFamily, GraphRole, GraphSpec, KvUpdate, Manifest, PaddingSide, PositionIds, VisionInput,
};
use crate::preprocess::{Media, Preprocessor};
use crate::runtime::{ExecutionProvider, Input, RuntimeOptions, Session, Spinning, Value};
use crate::text::{Prompt, PromptBatch, TextCodec};
use crate::zoo::VerifiedFiles;
use cache::{CacheEntry, DecodeState};
pub use features::FeatureCache;

/// Wall time of each stage of one `ask` (for a batch: of the whole batch).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Timings {
    /// Decoding and resizing the media.
    pub preprocess: Duration,
    /// The vision encoder.
    pub vision: Duration,
    /// The connector.
    pub connector: Duration,
    /// Rendering and encoding the prompts (each question once), and padding them into a batch.
    pub tokenize: Duration,
    /// Embedding the prompt and the decoder's prefill.
    pub prefill: Duration,
    /// All one-token decoder steps.
    pub decode: Duration,
    /// Choosing the next tokens from the logits (greedy, beam bookkeeping or sampling): the part of
    /// generation outside the decoder steps.
    pub select: Duration,
    /// The new tokens back to text.
    pub detokenize: Duration,
    /// Decoder steps run.
    pub decode_steps: usize,
    /// Inside ONNX Runtime's run calls, across the stages that run a graph (vision, connector,
    /// prefill, decode): what the graphs themselves took. `total` less this is lynx-zoo's own work.
    pub onnx_runtime: Duration,
    /// Everything, end to end.
    pub total: Duration,
    /// Rows in the batch this answer was part of.
    pub batch: usize,
}

impl Timings {
    /// Time to the first new token: everything up to the end of the prefill.
    pub fn time_to_first_token(&self) -> Duration {
        self.preprocess + self.vision + self.connector + self.tokenize + self.prefill
    }

    /// Everything but ONNX Runtime's run calls: preprocessing, tokenization, token choice, text
    /// decoding and the glue around each graph run (inputs, outputs, the feature cache, splices).
    pub fn outside_onnx_runtime(&self) -> Duration {
        self.total.saturating_sub(self.onnx_runtime)
    }

    /// Mean time of one decoder step.
    pub fn per_token(&self) -> Option<Duration> {
        (self.decode_steps > 0).then(|| self.decode / self.decode_steps as u32)
    }

    /// The time inside no stage: `total` less every stage (zero when the stage timers cover the
    /// item; the batch's bookkeeping and the answers' assembly are what is left). In a batch that
    /// mixes images and videos the groups run one after the other, and a later group's `total`
    /// counts the wait for the earlier ones: that wait is here too.
    pub fn unaccounted(&self) -> Duration {
        let stages = [
            self.preprocess,
            self.vision,
            self.connector,
            self.tokenize,
            self.prefill,
            self.decode,
            self.select,
            self.detokenize,
        ];
        self.total.saturating_sub(stages.into_iter().sum())
    }
}

/// The answer to one question.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    /// Decoded text, trimmed.
    pub text: String,
    /// New token ids (EOS excluded).
    pub tokens: Vec<u32>,
    /// Whether generation ended at EOS (false: at the token limit).
    pub finished: bool,
    /// Stage timings.
    pub timings: Timings,
    /// The execution provider that ran every graph.
    pub provider: ExecutionProvider,
}

/// Shared cache buffers are sized in steps of this many positions (see `Model::prefill`).
const CAPACITY_STEP: usize = 32;

/// One question of a batch.
#[derive(Debug, Clone)]
pub struct Request {
    /// What it is about.
    pub media: Media,
    /// The question.
    pub question: String,
    /// Its prompt, when encoded ahead ([`Model::request`]).
    encoded: Option<Encoded>,
    /// Its pixels, when prepared ahead ([`Model::prepare_pixels`]).
    prepared: Option<Prepared>,
}

/// A request's pixels made ahead of its batch, by which model, from which media, and how long it
/// took.
#[derive(Debug, Clone)]
struct Prepared {
    model: u64,
    media: Media,
    pixels: Option<Array4<f32>>,
    took: Duration,
}

/// A question's prompt encoded ahead of its batch, by which model, and how long it took.
#[derive(Debug, Clone)]
struct Encoded {
    model: u64,
    question: String,
    prompt: Prompt,
    took: Duration,
}

impl Request {
    /// A request; its question is encoded when it is asked.
    pub fn new(media: Media, question: impl Into<String>) -> Request {
        Request { media, question: question.into(), encoded: None, prepared: None }
    }

    /// The prompt encoded ahead for this question by model `model`, and the time it took; None if
    /// there is none, or it was encoded by another model or for another question (the fields are
    /// public: a question changed after [`Model::request`] is encoded again).
    fn encoded_by(&self, model: u64) -> Option<(&Prompt, Duration)> {
        self.encoded.as_ref().filter(|e| e.model == model && e.question == self.question).map(|e| (&e.prompt, e.took))
    }

    /// The pixels prepared ahead for this request's media by model `model`, and the time it took;
    /// None if there are none, or they were made by another model or for other media.
    fn prepared_by(&self, model: u64) -> Option<(Option<&Array4<f32>>, Duration)> {
        self.prepared
            .as_ref()
            .filter(|p| p.model == model && p.media == self.media)
            .map(|p| (p.pixels.as_ref(), p.took))
    }
}

/// Requests are equal when they ask the same question about the same media, encoded ahead or not.
impl PartialEq for Request {
    fn eq(&self, other: &Request) -> bool {
        self.media == other.media && self.question == other.question
    }
}

/// The decoder's last-position logits of a prefill, and what produced them (for parity checks).
#[derive(Debug, Clone, PartialEq)]
pub struct Prefill {
    /// BOS + prompt token ids, per row, unpadded.
    pub input_ids: Vec<Vec<i64>>,
    /// (B, vocab) logits of the last position.
    pub last_logits: Array2<f32>,
}

/// A loaded variant.
#[derive(Debug)]
pub struct Model {
    manifest: Manifest,
    text: TextCodec,
    preprocessor: Option<Preprocessor>,
    vision: Option<Session>,
    connector: Option<Session>,
    embed: Session,
    decoder: Session,
    provider: ExecutionProvider,
    spinning: Spinning,
    decoder_weight_bytes: u64,
    features: Option<FeatureCache>,
    /// This model's identity for prompts and pixels prepared ahead ([`Model::request`],
    /// [`Model::prepare_pixels`]); [`Model::copies`] of one variant share it.
    id: u64,
}

/// The tensor bytes of a variant's decoder (its weights), from the files
/// [`crate::zoo::Zoo::read_verified`] read: what [`Spinning::Auto`] and `eval`'s `--workers auto`
/// ([`crate::eval::auto_workers`]) decide by.
pub fn decoder_weight_bytes(manifest: &Manifest, files: &VerifiedFiles) -> Result<u64> {
    files.graph(&manifest.graphs.decoder)?.tensor_bytes(GraphRole::Decoder)
}

/// What the vision side hands the decoder for a batch.
enum VisionOut {
    /// (B, V, D) visual embeddings to put before the text (the connector's output tensor).
    Prefix(Value),
    /// `cross_key_values.*` values, one row per sample.
    Cross(Vec<(String, Value)>),
    /// Nothing (no vision: `vision_input: none`).
    Blind,
}

impl Model {
    /// Creates the tokenizer and a session per graph from the bytes [`crate::zoo::Zoo::read_verified`]
    /// read and verified, and checks every session's inputs and outputs against the manifest.
    pub fn from_verified(manifest: Manifest, files: &VerifiedFiles, options: &RuntimeOptions) -> Result<Model> {
        let decoder_bytes = decoder_weight_bytes(&manifest, files)?;
        Self::build(manifest, files, options, decoder_bytes, Self::new_id())
    }

    /// `n` copies of one variant for workers answering side by side ([`crate::eval::evaluate`]),
    /// each with its own ONNX Runtime sessions, made from the same verified bytes: a question
    /// encoded or a picture prepared by one copy is taken as it is by the others.
    pub fn copies(manifest: Manifest, files: &VerifiedFiles, options: &RuntimeOptions, n: usize) -> Result<Vec<Model>> {
        let (decoder_bytes, id) = (decoder_weight_bytes(&manifest, files)?, Self::new_id());
        (0..n).map(|_| Self::build(manifest.clone(), files, options, decoder_bytes, id)).collect()
    }

    /// A new identity for prompts and pixels prepared ahead.
    fn new_id() -> u64 {
        static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    }

    fn build(
        manifest: Manifest,
        files: &VerifiedFiles,
        options: &RuntimeOptions,
        decoder_bytes: u64,
        id: u64,
    ) -> Result<Model> {
        // one choice for every session of the variant, by its decoder's size
        let spinning = options.spinning().resolve(decoder_bytes);
        let options = &options.clone().with_spinning(spinning);
        let load = |spec: &GraphSpec| -> Result<Session> {
            let s = Session::from_bytes(&files.graph(spec)?, spec.role, options)?;
            s.check_io(spec)?;
            Ok(s)
        };
        let text = TextCodec::from_bytes(&manifest.tokenizer, &manifest.prompt, &files.get(&manifest.tokenizer.file)?)?;
        let vision = manifest.graphs.vision.as_ref().map(load).transpose()?;
        let connector = manifest.graphs.connector.as_ref().map(load).transpose()?;
        let embed = load(&manifest.graphs.embed)?;
        let decoder = load(&manifest.graphs.decoder)?;
        let preprocessor = match (&manifest.preprocess, &manifest.video) {
            (Some(p), Some(v)) => Some(Preprocessor::new(p.clone(), *v)),
            _ => None,
        };
        if text.vocab_size() > manifest.model.vocab_size {
            return Err(Error::Tokenizer {
                path: text.path().to_path_buf(),
                message: format!(
                    "has {} tokens but the manifest's `model.vocab_size` is {}",
                    text.vocab_size(),
                    manifest.model.vocab_size
                ),
            });
        }
        Ok(Model {
            provider: options.ep(),
            spinning,
            decoder_weight_bytes: decoder_bytes,
            manifest,
            text,
            preprocessor,
            vision,
            connector,
            embed,
            decoder,
            features: None,
            id,
        })
    }

    /// Shares vision features with every model given the same cache: for variants whose vision
    /// graph has the same sha256 (a frozen encoder stored once), each sample is encoded once.
    pub fn with_feature_cache(mut self, cache: FeatureCache) -> Model {
        self.features = Some(cache);
        self
    }

    /// Time inside ONNX Runtime's run calls of every session so far.
    fn onnx_runtime_busy(&self) -> Duration {
        [self.vision.as_ref(), self.connector.as_ref(), Some(&self.embed), Some(&self.decoder)]
            .into_iter()
            .flatten()
            .map(Session::busy)
            .sum()
    }

    /// The manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// The variant's name.
    pub fn name(&self) -> &str {
        &self.manifest.name
    }

    /// The provider every session runs on.
    pub fn provider(&self) -> ExecutionProvider {
        self.provider
    }

    /// The bytes of every tensor of the decoder graph, inline or external
    /// ([`crate::onnx_proto::tensor_bytes`], counted from the verified bytes at load): what one
    /// decode step at batch 1 reads at least once, the memory-bandwidth floor's numerator.
    pub fn decoder_weight_bytes(&self) -> u64 {
        self.decoder_weight_bytes
    }

    /// Whether the sessions' idle threads spin ([`Spinning::On`] or `Off`: `Auto` decided at load).
    pub fn spinning(&self) -> Spinning {
        self.spinning
    }

    /// The tokenizer and prompt.
    pub fn text(&self) -> &TextCodec {
        &self.text
    }

    /// The image preprocessor (None without vision, `vision_input: none`). It turns media into
    /// their own pixels; [`Model::pixels`] gives what the vision graph gets.
    pub fn preprocessor(&self) -> Option<&Preprocessor> {
        self.preprocessor.as_ref()
    }

    /// The pixels the vision graph gets for `media`: (F, 3, S, S), F = 1 for an image and the
    /// manifest's frame count for a video; None for a variant without vision
    /// (`vision_input: none`), which ignores the media.
    ///
    /// For the matched blind control (`vision_input: blank`) the media are read and preprocessed
    /// as for `picture` (a bad file fails alike), then every frame is replaced by the blank
    /// picture ([`Preprocessor::blank`]): two different pictures give the same pixels. Text-only
    /// media ([`Media::None`]) do not become a blank picture: they are refused, as for `picture`.
    pub fn pixels(&self, media: &Media) -> Result<Option<Array4<f32>>> {
        match &self.preprocessor {
            Some(p) => Ok(Some(self.seen(p.pixels(media)?))),
            None => Ok(None),
        }
    }

    /// `pixels` (F, 3, S, S) as the vision graph sees them: themselves, or for `vision_input: blank`
    /// the blank picture with as many frames.
    fn seen(&self, pixels: Array4<f32>) -> Array4<f32> {
        self.blank_pixels(pixels.dim().0).unwrap_or(pixels)
    }

    /// For `vision_input: blank`, the blank picture's pixels (F, 3, S, S) with `frames` frames;
    /// else None.
    fn blank_pixels(&self, frames: usize) -> Option<Array4<f32>> {
        match (self.manifest.axes.vision_input, &self.preprocessor) {
            (VisionInput::Blank, Some(p)) => Some(p.blank(frames)),
            _ => None,
        }
    }

    /// The variant's default generation options.
    pub fn default_generation(&self) -> GenerationOptions {
        self.manifest.generation.clone()
    }

    /// Answers one question about `media`.
    ///
    /// ```no_run
    /// use lynx_zoo::{Zoo, Media, RuntimeOptions};
    /// let zoo = Zoo::open(".")?;
    /// let mut model = zoo.load("lynx", &RuntimeOptions::new())?;
    /// let opts = model.default_generation();
    /// let answer = model.ask(&Media::image("data/test/images/000000.png"), "What colour is the circle?", &opts)?;
    /// println!("{} ({} tokens, {:?})", answer.text, answer.tokens.len(), answer.timings.total);
    /// # Ok::<(), lynx_zoo::Error>(())
    /// ```
    pub fn ask(&mut self, media: &Media, question: &str, options: &GenerationOptions) -> Result<Answer> {
        let request = Request::new(media.clone(), question);
        let mut answers = self.ask_batch(std::slice::from_ref(&request), options)?;
        answers.pop().ok_or_else(|| Error::Mismatch("the batch of one returned no answer".into()))
    }

    /// A request whose question is encoded now, for [`Model::ask_batch`] of this model to take as
    /// it is (another model encodes it again). Encoding a run's questions in one pass ahead of it
    /// is cheaper than one at a time between graph runs, which leave the tokenizer's code and
    /// tables out of the caches (docs/performance.md). Fails as asking would: an empty question,
    /// or one holding the image placeholder. The time it took counts in the answer's `tokenize`
    /// stage and total.
    pub fn request(&self, media: Media, question: impl Into<String>) -> Result<Request> {
        let question = question.into();
        let t = Instant::now();
        let prompt = self.text.prompt(&question)?;
        let took = t.elapsed();
        let encoded = Encoded { model: self.id, question: question.clone(), prompt, took };
        Ok(Request { media, question, encoded: Some(encoded), prepared: None })
    }

    /// Reads and preprocesses `request`'s media now ([`Model::pixels`]), for [`Model::ask_batch`] of
    /// this model to take as they are (another model, or other media, preprocesses them again).
    /// Preparing a few items' pictures in one pass ahead of their batches is cheaper than one at a
    /// time between graph runs, which leave the decoder's code and tables out of the caches
    /// (docs/performance.md); the pixels are held until the request is dropped. Fails as asking
    /// would: an unreadable or oversized file. The time it took counts in the answer's
    /// `preprocess` stage and total. Pixels given as such (`Media::Pixels`) are left as they are.
    pub fn prepare_pixels(&self, request: &mut Request) -> Result<()> {
        if matches!(request.media, Media::Pixels(_)) {
            return Ok(());
        }
        let t = Instant::now();
        let pixels = self.pixels(&request.media)?;
        let took = t.elapsed();
        request.prepared = Some(Prepared { model: self.id, media: request.media.clone(), pixels, took });
        Ok(())
    }

    /// Answers a batch of questions together (padded on the manifest's `prompt.padding` side; one
    /// decoder run per step for all). Images and videos may be mixed: samples are grouped by frame
    /// count, answers come back in request order. A variant with `prompt.padding: none` answers
    /// them one at a time.
    pub fn ask_batch(&mut self, requests: &[Request], options: &GenerationOptions) -> Result<Vec<Answer>> {
        let start = Instant::now();
        // Every question encoded once, before any picture is read: an empty question fails here.
        // A prompt encoded ahead by this model is taken as it is, with the time it took.
        let t = Instant::now();
        let mut tokenize_ahead = Duration::ZERO;
        let mut prompts = Vec::with_capacity(requests.len());
        for r in requests {
            prompts.push(match r.encoded_by(self.id) {
                Some((prompt, took)) => {
                    tokenize_ahead += took;
                    prompt.clone()
                }
                None => self.text.prompt(&r.question)?,
            });
        }
        let tokenize = t.elapsed() + tokenize_ahead;
        // Pixels next: a bad image fails the batch before any graph runs. Pixels prepared ahead by
        // this model are read where they are, with the time they took.
        let mut pixels: Vec<Option<CowArray<'_, f32, Ix4>>> = Vec::with_capacity(requests.len());
        let t = Instant::now();
        let mut preprocess_ahead = Duration::ZERO;
        for r in requests {
            pixels.push(match r.prepared_by(self.id) {
                Some((px, took)) => {
                    preprocess_ahead += took;
                    px.map(|p| CowArray::from(p.view()))
                }
                None => self.pixels(&r.media)?.map(CowArray::from),
            });
        }
        let preprocess = t.elapsed() + preprocess_ahead;
        // what was done before this call counts in each answer's total too
        let ahead = tokenize_ahead + preprocess_ahead;
        // Group by frame count (images: 1, videos: F); one request per group when the decoder
        // cannot take padded rows (`prompt.padding: none`).
        let alone = self.manifest.prompt.padding == PaddingSide::None;
        let mut groups: Vec<(usize, Vec<usize>)> = Vec::new();
        for (i, px) in pixels.iter().enumerate() {
            let f = px.as_ref().map_or(0, |p| p.dim().0);
            match groups.iter_mut().find(|(g, _)| *g == f && !alone) {
                Some((_, idx)) => idx.push(i),
                None => groups.push((f, vec![i])),
            }
        }
        let mut answers: Vec<Option<Answer>> = vec![None; requests.len()];
        for (_, idx) in groups {
            let px: Vec<ArrayView4<'_, f32>> =
                idx.iter().filter_map(|&i| pixels[i].as_ref().map(|p| p.view())).collect();
            let t = Instant::now();
            let batch = self.text.batch_prompts(idx.iter().map(|&i| prompts[i].clone()).collect());
            let mut timings =
                Timings { preprocess, tokenize: tokenize + t.elapsed(), batch: idx.len(), ..Timings::default() };
            let busy = self.onnx_runtime_busy();
            let out = self.run_batch(&px, batch, options, &mut timings)?;
            timings.onnx_runtime = self.onnx_runtime_busy().saturating_sub(busy);
            let t = Instant::now();
            let texts = out
                .iter()
                .map(|(tokens, _)| Ok(self.text.decode(tokens)?.trim().to_string()))
                .collect::<Result<Vec<_>>>()?;
            timings.detokenize = t.elapsed();
            for ((&i, (tokens, finished)), text) in idx.iter().zip(out).zip(texts) {
                timings.total = start.elapsed() + ahead;
                answers[i] = Some(Answer { text, tokens, finished, timings, provider: self.provider });
            }
        }
        answers.into_iter().map(|a| a.ok_or_else(|| Error::Mismatch("a request got no answer".into()))).collect()
    }

    /// Runs the prefill only, on preprocessed pixels (F, 3, S, S) per sample (ignored without
    /// vision; replaced by the blank picture for `vision_input: blank`, as in [`Model::pixels`]),
    /// and returns each row's last-position logits -- the parity test's view of the pipeline. A
    /// variant with `prompt.padding: none` runs each question alone, as `ask_batch` does.
    pub fn prefill_logits(&mut self, pixels: &[Array4<f32>], questions: &[&str]) -> Result<Prefill> {
        let blanked: Option<Vec<Array4<f32>>> = pixels.iter().map(|p| self.blank_pixels(p.dim().0)).collect();
        let pixels: Vec<ArrayView4<'_, f32>> = blanked.as_deref().unwrap_or(pixels).iter().map(|p| p.view()).collect();
        if self.manifest.prompt.padding != PaddingSide::None || questions.len() < 2 {
            return self.prefill_only(&pixels, questions);
        }
        if !pixels.is_empty() && pixels.len() != questions.len() {
            return Err(Error::InvalidArgument {
                what: "media",
                value: format!("{} pixel tensors for {} questions", pixels.len(), questions.len()),
                expected: "one image or video per question".into(),
            });
        }
        let mut rows = Vec::with_capacity(questions.len());
        for (i, q) in questions.iter().enumerate() {
            let px = pixels.get(i).map(std::slice::from_ref).unwrap_or_default();
            rows.push(self.prefill_only(px, std::slice::from_ref(q))?);
        }
        let views: Vec<_> = rows.iter().map(|p| p.last_logits.view()).collect();
        let last_logits = concatenate(Axis(0), &views).map_err(|e| shape(LOGITS, e))?;
        Ok(Prefill { input_ids: rows.into_iter().flat_map(|p| p.input_ids).collect(), last_logits })
    }

    fn prefill_only(&mut self, pixels: &[ArrayView4<'_, f32>], questions: &[&str]) -> Result<Prefill> {
        let mut timings = Timings::default();
        let batch = self.text.batch(questions)?;
        let (state, logits, ids, _) = self.prefill(pixels, batch, 1, &mut timings)?;
        drop(state);
        Ok(Prefill { input_ids: ids, last_logits: logits })
    }

    fn run_batch(
        &mut self,
        pixels: &[ArrayView4<'_, f32>],
        batch: PromptBatch,
        options: &GenerationOptions,
        timings: &mut Timings,
    ) -> Result<Vec<(Vec<u32>, bool)>> {
        let special = SpecialTokens { eos: self.text.eos, pad: self.text.pad };
        let variant = self.manifest.name.clone();
        let (mut state, first, _, max_new) = self.prefill(pixels, batch, options.max_new_tokens, timings)?;
        let mut opts = options.clone();
        if max_new < opts.max_new_tokens {
            tracing::warn!(
                %variant,
                asked = opts.max_new_tokens,
                allowed = max_new,
                "max_new_tokens cut to fit the context"
            );
            opts.max_new_tokens = max_new;
            opts.min_new_tokens = opts.min_new_tokens.min(max_new);
        }
        let t = Instant::now();
        let generated = generate(first, &mut state, &opts, special)?;
        timings.select = t.elapsed().saturating_sub(state.elapsed);
        timings.decode_steps = state.steps;
        // releasing the cache (and a shared buffer's binding) is the decoder's too
        let (elapsed, t) = (state.elapsed, Instant::now());
        drop(state);
        timings.decode = elapsed + t.elapsed();
        Ok(generated.into_iter().map(|g| (g.tokens, g.finished)).collect())
    }

    /// Vision -> connector -> prompt embedding -> decoder prefill. Returns the decode state, the
    /// last-position logits (B, V), the unpadded prompt ids and how many new tokens fit.
    #[allow(clippy::type_complexity)]
    fn prefill(
        &mut self,
        pixels: &[ArrayView4<'_, f32>],
        batch: PromptBatch,
        max_new_tokens: usize,
        timings: &mut Timings,
    ) -> Result<(DecodeState<'_>, Array2<f32>, Vec<Vec<i64>>, usize)> {
        let b = batch.ids.len();
        let vision = self.encode(pixels, b, timings)?;

        let t = Instant::now();
        let l = batch.ids.first().map_or(0, Vec::len);
        let flat: Vec<i64> = batch.ids.iter().flatten().copied().collect();
        let ids = ArrayD::from_shape_vec(IxDyn(&[b, l]), flat).map_err(|e| shape(INPUT_IDS, e))?;
        let mut out = self.embed.run(&[(INPUT_IDS, Input::I64(ids.view()))])?;
        let text_embeds = out.take(INPUTS_EMBEDS)?; // (B, L, D)

        // The decoder's inputs_embeds: the spliced prompt (prefix connectors), else the embedding
        // graph's output tensor as it is.
        let spliced: Option<Value>;
        let (mask, cross) = match vision {
            VisionOut::Prefix(visual) => {
                // [pad][text before][visual][text after] per row: (B, V + L, D); the prefix layout
                // has no text before (the picture goes before BOS).
                let text = text_embeds.view_f32()?;
                let text3 = text.into_dimensionality::<Ix3>().map_err(|e| shape(INPUTS_EMBEDS, e))?;
                let visual = visual.view_f32()?;
                let vis3 = visual.into_dimensionality::<Ix3>().map_err(|e| shape(VISUAL_EMBEDS, e))?;
                let at: Vec<usize> = batch.image_at.iter().map(|k| k.unwrap_or(0)).collect();
                let side = self.manifest.prompt.padding;
                let (embeds, mask) = splice_visual(text3, vis3, &batch.lengths, &at, side)?;
                spliced = Some(Value::from_f32(embeds.into_dyn())?); // moved, not copied
                (mask, Vec::new())
            }
            VisionOut::Cross(cross) => {
                spliced = None;
                (batch.mask.clone(), cross)
            }
            VisionOut::Blind => {
                spliced = None;
                (batch.mask.clone(), Vec::new())
            }
        };
        let embeds = Input::Value(spliced.as_ref().unwrap_or(&text_embeds));

        // Context: the longest row's prompt plus the new tokens must fit in max_positions.
        let prompt_len = mask.iter().map(|m| m.iter().filter(|&&x| x == 1).count()).max().unwrap_or(0);
        let ctx = self.manifest.model.max_positions;
        let reserve = 1usize;
        if prompt_len + reserve > ctx {
            return Err(Error::ContextOverflow {
                variant: self.manifest.name.clone(),
                tokens: prompt_len,
                reserve,
                max_positions: ctx,
            });
        }
        let max_new = max_new_tokens.min(ctx - prompt_len);

        let dims = self.manifest.model;
        let shared = self.manifest.kv_cache.update == KvUpdate::SharedBuffer;
        // the prefill's past: (B, kv_heads, 0, head_dim), empty; or, shared, a buffer for every
        // position this generation can reach: (B, kv_heads, prompt + new tokens, head_dim)
        let total = mask.first().map_or(0, Vec::len) + max_new;
        let names = self.manifest.cache_names();
        let (cache, binding) = match shared {
            true => {
                // The capacity rounded up to a multiple of 32 positions (within the context), so
                // that generations of about one length reuse one set of buffers and its binding
                // (`Session::take_buffers`); a step's cost grows a little with the capacity.
                let capacity = total.div_ceil(CAPACITY_STEP) * CAPACITY_STEP;
                let capacity = capacity.min(total.max(ctx));
                let set = self.decoder.take_buffers(&[b, dims.kv_heads, capacity, dims.head_dim], names.len())?;
                let cache = names.into_iter().zip(set.values).map(|((past, present), value)| CacheEntry {
                    past,
                    present,
                    value,
                });
                (cache.collect(), set.binding)
            }
            false => {
                let cache = names.into_iter().map(|(past, present)| {
                    Value::empty_f32(&[b, dims.kv_heads, 0, dims.head_dim]).map(|value| CacheEntry {
                        past,
                        present,
                        value,
                    })
                });
                (cache.collect::<Result<Vec<_>>>()?, None)
            }
        };
        let mut state = DecodeState {
            embed: &mut self.embed,
            decoder: &mut self.decoder,
            position_ids: self.manifest.model.position_ids == PositionIds::Input,
            cache,
            shared,
            cross,
            row_sample: (0..b).collect(),
            mask,
            elapsed: Duration::ZERO,
            steps: 0,
            rows_moved: 0,
            binding,
        };
        let logits = state.run(embeds)?;
        timings.prefill = t.elapsed();
        Ok((state, logits, batch.encoded, max_new))
    }

    /// Runs vision and connector for B samples of (F, 3, S, S) pixels.
    fn encode(&mut self, pixels: &[ArrayView4<'_, f32>], b: usize, timings: &mut Timings) -> Result<VisionOut> {
        let family = self.manifest.axes.connector.family();
        let (Some(vision), Some(connector)) = (self.vision.as_mut(), self.connector.as_mut()) else {
            return Ok(VisionOut::Blind);
        };
        if pixels.len() != b {
            return Err(Error::InvalidArgument {
                what: "media",
                value: format!("{} pixel tensors for {b} questions", pixels.len()),
                expected: "one image or video per question".into(),
            });
        }
        let t = Instant::now();
        // (B, F, P, Dv): the encoder's output tensor itself, viewed in that shape, or from the cache
        let (fresh, cached);
        let feats = match &self.features {
            None => {
                fresh = encode_pixels(vision, pixels)?;
                fresh.0.view_f32()?.into_shape_with_order(IxDyn(&fresh.1)).map_err(|e| shape(IMAGE_FEATURES, e))?
            }
            Some(cache) => {
                let sha = self.manifest.graphs.vision.as_ref().map(|g| g.file.sha256.as_str()).unwrap_or_default();
                cached = cached_vision(vision, cache, sha, pixels)?;
                cached.view().into_dyn()
            }
        };
        timings.vision = t.elapsed();

        let t = Instant::now();
        let mut out = connector.run(&[(IMAGE_FEATURES, Input::F32(feats))])?;
        let result = match family {
            ConnectorFamily::Prefix => VisionOut::Prefix(out.take(VISUAL_EMBEDS)?),
            ConnectorFamily::CrossAttention => VisionOut::Cross(out.take_prefixed(CROSS_PREFIX)),
            ConnectorFamily::Blind => VisionOut::Blind,
        };
        timings.connector = t.elapsed();
        Ok(result)
    }
}

/// Runs the vision encoder on B samples of (F, 3, S, S) pixels: (B, F, P, Dv) features. One
/// sample is fed as it is; several are stacked into one (B*F, 3, S, S) tensor.
fn run_vision(vision: &mut Session, pixels: &[ArrayView4<'_, f32>]) -> Result<Array4<f32>> {
    let (feats, dims) = encode_pixels(vision, pixels)?;
    feats.view_f32()?.to_owned().into_shape_with_order(dims).map_err(|e| shape(IMAGE_FEATURES, e))
}

/// [`run_vision`]'s features as the encoder's output tensor, (B*F, P, Dv), with the (B, F, P, Dv)
/// they are read as (no copy).
fn encode_pixels(vision: &mut Session, pixels: &[ArrayView4<'_, f32>]) -> Result<(Value, [usize; 4])> {
    let stacked;
    let (b, images) = match pixels {
        [one] if one.is_standard_layout() => (1, one.view()),
        _ => {
            stacked = Preprocessor::stack(pixels)?; // (B, F, 3, S, S)
            let (b, f, c, h, w) = stacked.dim();
            (b, stacked.view().into_shape_with_order((b * f, c, h, w)).map_err(|e| shape(PIXEL_VALUES, e))?)
        }
    };
    let f = images.dim().0 / b.max(1);
    let mut out = vision.run(&[(PIXEL_VALUES, Input::F32(images.into_dyn()))])?;
    let feats = out.take(IMAGE_FEATURES)?; // (B*F, P, Dv)
    let fshape = feats.shape();
    let (p, dv) = (fshape.get(1).copied().unwrap_or(0), fshape.get(2).copied().unwrap_or(0));
    if fshape.len() != 3 || fshape[0] != b * f {
        return Err(shape(IMAGE_FEATURES, format!("{fshape:?} for {b} samples of {f} frames")));
    }
    Ok((feats, [b, f, p, dv]))
}

/// [`run_vision`] through a shared [`FeatureCache`]: only the samples not cached under the
/// encoder's `sha256` are encoded (in one batch), and their features are stored.
fn cached_vision(
    vision: &mut Session,
    cache: &FeatureCache,
    sha256: &str,
    pixels: &[ArrayView4<'_, f32>],
) -> Result<Array4<f32>> {
    let keys: Vec<_> = pixels.iter().map(|p| FeatureCache::key(sha256, p)).collect();
    let mut per_sample: Vec<Option<std::sync::Arc<ndarray::Array3<f32>>>> = keys.iter().map(|k| cache.get(k)).collect();
    let missing: Vec<usize> = (0..pixels.len()).filter(|&i| per_sample[i].is_none()).collect();
    if !missing.is_empty() {
        let todo: Vec<ArrayView4<'_, f32>> = missing.iter().map(|&i| pixels[i].view()).collect();
        let feats = run_vision(vision, &todo)?; // (M, F, P, Dv)
        for (j, &i) in missing.iter().enumerate() {
            let sample = std::sync::Arc::new(feats.index_axis(Axis(0), j).to_owned()); // (F, P, Dv)
            cache.insert(keys[i].clone(), std::sync::Arc::clone(&sample));
            per_sample[i] = Some(sample);
        }
    }
    let views: Vec<_> = per_sample.iter().flatten().map(|s| s.view().insert_axis(Axis(0))).collect();
    concatenate(Axis(0), &views).map_err(|e| shape(IMAGE_FEATURES, e)) // (B, F, P, Dv)
}

/// The prefill embeddings of a prefix variant: in each row of the padded text embeddings, the
/// row's visual tokens go before its `image_at[r]`-th token (counted from the row's first real
/// token). The prefix layout is `image_at` 0 (before BOS); the placeholder layout puts them where
/// the template's placeholder was. Returns (B, V + L, D) embeddings and the (B, V + L) mask.
///
/// ```text
///  left padding:
///  text (B, L, D), row r:  [pad .. pad][t0 .. t(k-1)][tk .. t(n-1)]      n = lengths[r], k = image_at[r]
///  visual (B, V, D), row r:                          ^ spliced in here
///  out (B, V + L, D):      [pad .. pad][t0 .. t(k-1)][v0 .. v(V-1)][tk .. t(n-1)]
///  mask (B, V + L):          0 ..  0     1 ..............................   1
///  position_ids (decoder): cumsum(mask) - 1, so t(k) sits at position k + V
///
///  right padding (`PaddingSide::Right`): the padding stays at the end of the row
///  text (B, L, D), row r:  [t0 .. t(k-1)][tk .. t(n-1)][pad .. pad]
///  out (B, V + L, D):      [t0 .. t(k-1)][v0 .. v(V-1)][tk .. t(n-1)][pad .. pad]
///  mask (B, V + L):          1 ..............................    1     0  ..  0
/// ```
pub fn splice_visual(
    text: ArrayView3<'_, f32>,
    visual: ArrayView3<'_, f32>,
    lengths: &[usize],
    image_at: &[usize],
    side: PaddingSide,
) -> Result<(Array3<f32>, Vec<Vec<i64>>)> {
    let (b, l, _) = text.dim();
    let v = visual.dim().1;
    if visual.dim().0 != b || lengths.len() != b || image_at.len() != b {
        return Err(shape(
            VISUAL_EMBEDS,
            format!(
                "{} visual rows, {} lengths and {} places for {b} text rows",
                visual.dim().0,
                lengths.len(),
                image_at.len()
            ),
        ));
    }
    let d = text.dim().2;
    if visual.dim().2 != d {
        return Err(shape(VISUAL_EMBEDS, format!("width {} for text embeddings of width {d}", visual.dim().2)));
    }
    // (B, V + L, D), each row written once in place
    let mut embeds = Array3::<f32>::zeros((b, v + l, d));
    let mut mask = Vec::with_capacity(b);
    for r in 0..b {
        let (n, k) = (lengths[r], image_at[r]);
        if n > l || k > n {
            return Err(shape(INPUTS_EMBEDS, format!("row {r}: the picture at token {k} of {n}, padded to {l}")));
        }
        let right = side == PaddingSide::Right;
        let at = if right { k } else { l - n + k }; // (left: the padding, then) k text tokens
        embeds.slice_mut(s![r, ..at, ..]).assign(&text.slice(s![r, ..at, ..]));
        embeds.slice_mut(s![r, at..at + v, ..]).assign(&visual.slice(s![r, .., ..]));
        embeds.slice_mut(s![r, at + v.., ..]).assign(&text.slice(s![r, at.., ..]));
        let (lead, tail) = if right { (0, l - n) } else { (l - n, 0) };
        let mut m = vec![0i64; lead];
        m.extend(std::iter::repeat_n(1, v + n));
        m.resize(lead + v + n + tail, 0);
        mask.push(m);
    }
    Ok((embeds, mask))
}

fn shape(tensor: &str, e: impl std::fmt::Display) -> Error {
    Error::GraphIo {
        graph: "pipeline".into(),
        tensor: tensor.into(),
        expected: "a consistent shape".into(),
        got: e.to_string(),
        source: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array3;

    #[test]
    fn a_prompt_encoded_ahead_serves_only_its_codec_and_its_question() {
        let prompt = Prompt { ids: vec![1, 7, 9], image_at: None };
        let took = Duration::from_micros(20);
        let encoded = Encoded { model: 3, question: "red?".into(), prompt: prompt.clone(), took };
        let mut r = Request { media: Media::None, question: "red?".into(), encoded: Some(encoded), prepared: None };
        assert_eq!(r.encoded_by(3), Some((&prompt, took)));
        assert_eq!(r.encoded_by(4), None, "another model's codec encodes it again");
        r.question = "blue?".into();
        assert_eq!(r.encoded_by(3), None, "a question changed after encoding is encoded again");
        assert_eq!(r, Request::new(Media::None, "blue?"), "equality ignores how far a request is prepared");
        assert_eq!(Request::new(Media::None, "red?").encoded_by(3), None);
    }

    #[test]
    fn pixels_prepared_ahead_serve_only_their_model_and_their_media() {
        let px = Array4::<f32>::zeros((1, 3, 2, 2));
        let took = Duration::from_micros(70);
        let image = Media::image("a.png");
        let prepared = Prepared { model: 5, media: image.clone(), pixels: Some(px.clone()), took };
        let mut r = Request { media: image, question: "red?".into(), encoded: None, prepared: Some(prepared) };
        assert_eq!(r.prepared_by(5), Some((Some(&px), took)));
        assert_eq!(r.prepared_by(6), None, "another model preprocesses the media itself");
        r.media = Media::image("b.png");
        assert_eq!(r.prepared_by(5), None, "media changed after preparing are read again");
    }

    #[test]
    fn unaccounted_time_is_the_total_less_every_stage_and_never_negative() {
        let ms = Duration::from_millis;
        let t = Timings {
            preprocess: ms(1),
            vision: ms(2),
            connector: ms(3),
            tokenize: ms(4),
            prefill: ms(5),
            decode: ms(6),
            select: ms(7),
            detokenize: ms(8),
            total: ms(40),
            ..Timings::default()
        };
        assert_eq!(t.unaccounted(), ms(4));
        assert_eq!(Timings { total: ms(30), ..t }.unaccounted(), Duration::ZERO);
    }

    /// Text (B, L, 1) whose value is 100 * row + token index (-1 for padding), visual (B, V, 1)
    /// whose value is -(10 * row + index) - 10, so every embedding says where it came from.
    fn rows(lengths: &[usize], l: usize, v: usize) -> (Array3<f32>, Array3<f32>) {
        let b = lengths.len();
        let text = Array3::from_shape_fn((b, l, 1), |(r, t, _)| {
            let pad = l - lengths[r];
            if t < pad {
                -1.0
            } else {
                (100 * r + t - pad) as f32
            }
        });
        let visual = Array3::from_shape_fn((b, v, 1), |(r, j, _)| -((10 * r + j) as f32) - 10.0);
        (text, visual)
    }

    fn column(a: &Array3<f32>, r: usize) -> Vec<f32> {
        a.slice(s![r, .., 0]).to_vec()
    }

    #[test]
    fn the_prefix_layout_puts_the_picture_after_the_padding() {
        let (text, visual) = rows(&[3, 2], 3, 2);
        let (out, mask) = splice_visual(text.view(), visual.view(), &[3, 2], &[0, 0], PaddingSide::Left).unwrap();
        assert_eq!(out.dim(), (2, 5, 1));
        assert_eq!(column(&out, 0), [-10.0, -11.0, 0.0, 1.0, 2.0]);
        assert_eq!(column(&out, 1), [-1.0, -20.0, -21.0, 100.0, 101.0]);
        assert_eq!(mask, [vec![1, 1, 1, 1, 1], vec![0, 1, 1, 1, 1]]);
    }

    #[test]
    fn a_placeholder_in_the_middle_splices_the_picture_there_in_every_padded_row() {
        // Row 0: 4 tokens, picture after 2 of them; row 1: 2 tokens (2 pads), picture after 1.
        let (text, visual) = rows(&[4, 2], 4, 3);
        let (out, mask) = splice_visual(text.view(), visual.view(), &[4, 2], &[2, 1], PaddingSide::Left).unwrap();
        assert_eq!(out.dim(), (2, 7, 1), "V + L positions");
        assert_eq!(column(&out, 0), [0.0, 1.0, -10.0, -11.0, -12.0, 2.0, 3.0]);
        assert_eq!(column(&out, 1), [-1.0, -1.0, 100.0, -20.0, -21.0, -22.0, 101.0]);
        assert_eq!(mask, [vec![1; 7], vec![0, 0, 1, 1, 1, 1, 1]]);
        // The decoder's positions follow the mask: the text after the picture continues at
        // position k + V, padding sits at 0.
        assert_eq!(cache::positions(&mask, 7), [vec![0, 1, 2, 3, 4, 5, 6], vec![0, 0, 0, 1, 2, 3, 4]]);
        // The picture at the end of the prompt is allowed too; past the end is not.
        let (end, _) = splice_visual(text.view(), visual.view(), &[4, 2], &[4, 2], PaddingSide::Left).unwrap();
        assert_eq!(column(&end, 1), [-1.0, -1.0, 100.0, 101.0, -20.0, -21.0, -22.0]);
        assert!(splice_visual(text.view(), visual.view(), &[4, 2], &[5, 0], PaddingSide::Left).is_err());
        assert!(splice_visual(text.view(), visual.view(), &[4], &[0], PaddingSide::Left).is_err());
    }

    #[test]
    fn right_padding_keeps_the_padding_after_the_row_and_the_picture_where_it_goes() {
        // Right-padded text: row 1's two tokens first, its two pads last.
        let b = 2;
        let lengths = [4, 2];
        let text =
            Array3::from_shape_fn((b, 4, 1), |(r, t, _)| if t < lengths[r] { (100 * r + t) as f32 } else { -1.0 });
        let visual = Array3::from_shape_fn((b, 3, 1), |(r, j, _)| -((10 * r + j) as f32) - 10.0);
        let (out, mask) = splice_visual(text.view(), visual.view(), &lengths, &[2, 1], PaddingSide::Right).unwrap();
        assert_eq!(column(&out, 0), [0.0, 1.0, -10.0, -11.0, -12.0, 2.0, 3.0]);
        assert_eq!(column(&out, 1), [100.0, -20.0, -21.0, -22.0, 101.0, -1.0, -1.0]);
        assert_eq!(mask, [vec![1; 7], vec![1, 1, 1, 1, 1, 0, 0]]);
        // each row's real positions are 0.. in order, its last at its row sum - 1
        assert_eq!(cache::positions(&mask, 7)[1][..5], [0, 1, 2, 3, 4]);
    }
}
