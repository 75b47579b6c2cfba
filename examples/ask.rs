//! Answer a question about an image with a variant of a zoo.
//!
//! ```text
//! cargo run --example ask -- [ZOO_DIR] [VARIANT] [IMAGE] [QUESTION]
//! cargo run --example ask -- tests/fixtures/runtime/zoo tiny tests/fixtures/runtime/media/scene.png "What colour is the block?"
//! ```
//!
//! Opens the zoo, loads the variant on the CPU, asks with the variant's default decoding and with
//! greedy decoding, then asks a batch of two questions.

use lynx_zoo::{GenerationOptions, Media, Request, RuntimeOptions, Zoo};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let zoo_dir = args.next().unwrap_or_else(|| ".".into());
    let variant = args.next().unwrap_or_else(|| "lynx".into());
    let image = args.next().unwrap_or_else(|| "tests/fixtures/runtime/media/scene.png".into());
    let question = args.next().unwrap_or_else(|| "What colour is the block?".into());

    let zoo = Zoo::open(&zoo_dir)?;
    println!("zoo {} has {} variants", zoo.root().display(), zoo.variants().len());
    let mut model = zoo.load(&variant, &RuntimeOptions::new().with_intra_threads(2)?)?;
    let media = Media::image(&image);

    let answer = model.ask(&media, &question, &model.default_generation())?;
    println!("default decoding: {:?} ({} tokens on {})", answer.text, answer.tokens.len(), answer.provider);
    let t = answer.timings;
    println!(
        "  preprocess {:?}, vision {:?}, connector {:?}, prefill {:?}, decode {:?} over {} steps, total {:?}",
        t.preprocess, t.vision, t.connector, t.prefill, t.decode, t.decode_steps, t.total
    );

    let greedy = model.ask(&media, &question, &GenerationOptions::greedy(16))?;
    println!("greedy: {:?}", greedy.text);

    let batch = [Request::new(media.clone(), question.clone()), Request::new(media, "How many shapes are there?")];
    for (request, answer) in batch.iter().zip(model.ask_batch(&batch, &GenerationOptions::greedy(16))?) {
        println!("batch: {:?} -> {:?}", request.question, answer.text);
    }
    Ok(())
}
