//! Per-stage cost of one 4096² texture on one core, the encoder candidates
//! compared, and the whole service end to end against the local imagery
//! server. Run: `cargo bench -p xearthlayer --bench stages`.
//!
//! Timings are best-of-N wall time on one thread (the machine has other
//! work); the end-to-end figures also report process CPU time.

use std::sync::Arc;
use std::time::{Duration, Instant};

use xearthlayer::cache::DiskCache;
use xearthlayer::coord::TextureId;
use xearthlayer::dds::encode::{encode, encoded_len};
use xearthlayer::dds::layout::{self, DdsFormat};
use xearthlayer::image::resample::halve;
use xearthlayer::image::{decode_chunk, CHUNK_RGBA_LEN, RGBA};
use xearthlayer::provider::TemplateProvider;
use xearthlayer::texture::build::{self, ChunkInput};
use xearthlayer::texture::{ServiceConfig, TextureService};
use xel_sim::imagery::chunk_jpeg;
use xel_sim::server::{ImageryServer, ServerConfig};
use xel_sim::verify::psnr;

const SIDE: usize = 4096;

fn best_of<T>(runs: usize, mut f: impl FnMut() -> T) -> (Duration, T) {
    let mut best = Duration::MAX;
    let mut last = None;
    for _ in 0..runs {
        let start = Instant::now();
        let out = f();
        best = best.min(start.elapsed());
        last = Some(out);
    }
    (best, last.expect("at least one run"))
}

fn ms(d: Duration) -> String {
    format!("{:8.1} ms", d.as_secs_f64() * 1e3)
}

/// The 13 levels of a 4096² image, RGBA.
fn mip_chain(top: &[u8]) -> Vec<Vec<u8>> {
    let mut levels = vec![top.to_vec()];
    let mut side = SIDE;
    while side > 1 {
        let mut half = vec![0u8; (side / 2) * (side / 2) * RGBA];
        halve(levels.last().expect("non-empty"), side, side, &mut half);
        levels.push(half);
        side /= 2;
    }
    levels
}

fn cpu_seconds() -> f64 {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage fills the struct it is given.
    let usage = unsafe {
        libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr());
        usage.assume_init()
    };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 * 1e-6;
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let runs = if quick { 2 } else { 5 };
    let id = TextureId::parse("25264_10368_BI16.dds").expect("valid name");
    let jpegs: Vec<Vec<u8>> = id.chunks().map(|c| chunk_jpeg(c.zoom, c.x, c.y)).collect();
    let jpeg_bytes: usize = jpegs.iter().map(Vec::len).sum();
    println!(
        "input: 256 chunks, {:.1} KiB per JPEG on average",
        jpeg_bytes as f64 / 256.0 / 1024.0
    );

    // Decode.
    let mut chunk = vec![0u8; CHUNK_RGBA_LEN];
    let (decode_t, _) = best_of(runs, || {
        for jpeg in &jpegs {
            decode_chunk(jpeg, &mut chunk).expect("valid chunk");
        }
    });
    // Composite (into one 4096² image, as a staged pipeline would).
    let decoded: Vec<Vec<u8>> = jpegs
        .iter()
        .map(|j| {
            let mut c = vec![0u8; CHUNK_RGBA_LEN];
            decode_chunk(j, &mut c).expect("valid chunk");
            c
        })
        .collect();
    let (composite_t, image) = best_of(runs, || {
        let mut image = vec![0u8; SIDE * SIDE * RGBA];
        for (i, c) in decoded.iter().enumerate() {
            let (cx, cy) = (i % 16, i / 16);
            for y in 0..256 {
                let dst = ((cy * 256 + y) * SIDE + cx * 256) * RGBA;
                image[dst..dst + 256 * RGBA]
                    .copy_from_slice(&c[y * 256 * RGBA..(y + 1) * 256 * RGBA]);
            }
        }
        image
    });
    // Mips.
    let (mips_t, chain) = best_of(runs, || mip_chain(&image));
    // Encoders.
    let encode_all = |format: DdsFormat| {
        chain
            .iter()
            .enumerate()
            .map(|(l, px)| {
                let side = SIDE >> l;
                let mut out = vec![0u8; encoded_len(format, side, side)];
                encode(format, px, side, side, &mut out);
                out
            })
            .collect::<Vec<_>>()
    };
    let (bc1_t, bc1) = best_of(runs, || encode_all(DdsFormat::Bc1));
    let (bc3_t, bc3) = best_of(runs, || encode_all(DdsFormat::Bc3));
    let (texpresso_t, texpresso_top) = best_of(1, || {
        let params = texpresso::Params {
            algorithm: texpresso::Algorithm::RangeFit,
            ..Default::default()
        };
        let mut out = vec![0u8; texpresso::Format::Bc1.compressed_size(SIDE, SIDE)];
        texpresso::Format::Bc1.compress(&image, SIDE, SIDE, params, &mut out);
        out
    });
    // texpresso on level 0 only; the whole chain costs about 4/3 of that.
    let texpresso_all = texpresso_t.mul_f64(4.0 / 3.0);

    let quality = |format: DdsFormat, blocks: &[u8]| {
        let decoded = xel_sim::verify::decode_blocks(format, blocks, SIDE, SIDE);
        psnr(&image, &decoded)
    };
    println!();
    println!("| stage (one 4096² texture, one core) | time | notes |");
    println!("|---|---|---|");
    println!(
        "| decode 256 JPEG chunks (zune-jpeg) | {} | |",
        ms(decode_t)
    );
    println!("| composite into one 4096² image | {} | the pipeline avoids this: it works per 256 px strip |", ms(composite_t));
    println!("| 12 box-filter halvings | {} | |", ms(mips_t));
    println!(
        "| BC1, 13 levels (intel_tex_2) | {} | mip 0 PSNR {:.1} dB |",
        ms(bc1_t),
        quality(DdsFormat::Bc1, &bc1[0])
    );
    println!(
        "| BC3, 13 levels (intel_tex_2) | {} | mip 0 PSNR {:.1} dB |",
        ms(bc3_t),
        quality(DdsFormat::Bc3, &bc3[0])
    );
    println!(
        "| BC1, 13 levels (texpresso RangeFit, fastest) | {} | mip 0 PSNR {:.1} dB (level 0 timed, x4/3) |",
        ms(texpresso_all),
        quality(DdsFormat::Bc1, &texpresso_top)
    );
    let floor = decode_t + mips_t + bc1_t;
    println!("| floor: decode + mips + BC1 | {} | |", ms(floor));

    // The real pipeline, one thread: 16 strips, tail, assembly.
    for format in [DdsFormat::Bc1, DdsFormat::Bc3] {
        let mut scratch = build::Scratch::default();
        let (t, file) = best_of(runs, || {
            let strips: Vec<_> = jpegs
                .chunks(16)
                .map(|row| {
                    let inputs: Vec<ChunkInput> = row
                        .iter()
                        .map(|j| ChunkInput::Image(j.clone().into()))
                        .collect();
                    build::build_strip(format, 0, &inputs, &mut scratch)
                })
                .collect();
            let bands: Vec<Vec<u8>> = strips.iter().map(|s| s.band.clone()).collect();
            let tail = build::build_tail(format, 0, &bands);
            build::assemble_file(format, &strips, &tail)
        });
        assert_eq!(file.len() as u64, layout::file_size(format));
        println!(
            "| whole pipeline, {format}, one thread | {} | {:.2}x the floor |",
            ms(t),
            t.as_secs_f64() / floor.as_secs_f64()
        );
    }

    end_to_end(quick);
    disk_index(if quick { 20_000 } else { 100_000 });
}

/// Start-up cost of the disk cache: indexing a folder of many textures.
fn disk_index(files: u32) {
    let dir = tempfile::tempdir().expect("temp dir");
    let zoom = dir.path().join("custom/bc1/16");
    std::fs::create_dir_all(&zoom).expect("cache folder");
    for i in 0..files {
        std::fs::write(
            zoom.join(format!("{}_{}.xel", (i / 1000) * 16, (i % 1000) * 16)),
            b"x",
        )
        .expect("cache file");
    }
    let (t, cache) = best_of(3, || {
        DiskCache::open(dir.path(), "custom", DdsFormat::Bc1, u64::MAX).expect("cache opens")
    });
    assert_eq!(cache.stats().entries, files as usize);
    println!(
        "| disk cache start-up, {files} cached textures | {} | one directory scan |",
        ms(t)
    );
}

/// The service against the local imagery server at 0 ms latency: textures
/// one after another, then many at once.
fn end_to_end(quick: bool) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let server = ImageryServer::start(ServerConfig::default())
            .await
            .expect("imagery server");
        let provider = Arc::new(TemplateProvider::custom(&server.url_template()).expect("template"));
        // Few enough that the server's JPEG cache (4,096 chunks) holds them
        // all after the warm-up: the service is measured, not the server.
        let count: u32 = if quick { 6 } else { 12 };
        let ids: Vec<TextureId> = (0..count)
            .map(|i| TextureId::new(25264, 10368 + 16 * u64::from(i), 16, "BI").expect("valid"))
            .collect();
        for mode in ["warm-up", "sequential", "concurrent"] {
            let service = TextureService::new(provider.clone(), ServiceConfig::default()).expect("service");
            let (cpu0, start) = (cpu_seconds(), Instant::now());
            if mode == "concurrent" {
                let all = ids.iter().map(|id| service.texture(id));
                futures_util::future::join_all(all).await;
            } else {
                for id in &ids {
                    service.texture(id).await;
                }
            }
            let (wall, cpu) = (start.elapsed(), cpu_seconds() - cpu0);
            if mode == "warm-up" {
                continue;
            }
            println!(
                "| end to end, {count} textures {mode}, 0 ms latency | {} per texture | {:.0} ms CPU per texture (service + server), {:.0}% of 2 cores |",
                ms(wall / count),
                cpu * 1e3 / f64::from(count),
                cpu / wall.as_secs_f64() / 2.0 * 100.0
            );
        }
    });
}
