//! Backup copy benchmark: the same files copied by Backstop's object layer (the path a backup
//! job takes for every binlog: parallel, checksummed, atomic) beside a raw copy of the same
//! files in the same run.
//!
//! - local → local: ours (copy_file_range + CRC32C + fsync + rename, 1 and 8 at once) vs `cp -r`
//! - local → S3: ours (streaming multipart put, 8 at once) vs raw SDK `put_object` of each file
//!   from disk, one at a time
//! - S3 → S3 (same endpoint): ours (server-side CopyObject) vs streaming every byte through
//!   this process (get + put)
//!
//! ```sh
//! cargo bench --bench copy                 # local rows only
//! BACKSTOP_TEST_S3_ENDPOINT=http://127.0.0.1:8333 BACKSTOP_TEST_S3_ACCESS_KEY=... \
//!   BACKSTOP_TEST_S3_SECRET_KEY=... cargo bench --bench copy     # S3 rows too
//! BENCH_SMALL_FILES=128 BENCH_LARGE_FILES=4 cargo bench --bench copy   # 256 MiB instead of 1 GiB
//! ```

mod support;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use backstop::config::S3Config;
use backstop::objects::{self, DynObjectStore, LocalStore, ObjectStore, S3Store};
use futures::{StreamExt, TryStreamExt};
use rand::RngCore;
use support::env_usize;

const MIB: u64 = 1024 * 1024;

/// Binlog-like files: many small ones and a few large ones, random bytes.
fn make_dataset(root: &Path, small: usize, large: usize) -> Vec<(String, u64)> {
    let mut rng = rand::rng();
    let mut files = Vec::new();
    let mut write = |key: String, size: u64| {
        let path = root.join(&key);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let mut bytes = vec![0u8; size as usize];
        rng.fill_bytes(&mut bytes);
        std::fs::write(&path, &bytes).unwrap();
        files.push((key, size));
    };
    for i in 0..small {
        write(
            format!("insert_log/1/2/{}/{}/{i}", 100 + i / 16, 100 + i % 16),
            MIB,
        );
    }
    for i in 0..large {
        write(format!("insert_log/1/2/999/102/{i}"), 32 * MIB);
    }
    files
}

/// Flushes dirty pages left by the previous step, so no step pays for another's writes.
fn settle() {
    let _ = std::process::Command::new("sync").status();
}

fn mib_per_s(bytes: u64, seconds: f64) -> f64 {
    bytes as f64 / MIB as f64 / seconds
}

async fn copy_all(
    source: &dyn ObjectStore,
    dest: &dyn ObjectStore,
    files: &[(String, u64)],
    parallelism: usize,
    prefix: &str,
) -> f64 {
    let started = Instant::now();
    futures::stream::iter(files.iter())
        .map(|(key, _)| async move {
            objects::copy(source, key, dest, &format!("{prefix}{key}")).await
        })
        .buffer_unordered(parallelism)
        .try_collect::<Vec<_>>()
        .await
        .expect("copy");
    // Durable, as a backup makes its objects before the manifest.
    dest.sync().await.expect("sync");
    started.elapsed().as_secs_f64()
}

/// Streams every byte through this process, even where a server-side copy is possible.
async fn stream_all(
    source: &dyn ObjectStore,
    dest: &dyn ObjectStore,
    files: &[(String, u64)],
    parallelism: usize,
    prefix: &str,
) -> f64 {
    let started = Instant::now();
    futures::stream::iter(files.iter())
        .map(|(key, _)| async move {
            let reader = source.get(key).await?;
            dest.put(&format!("{prefix}{key}"), reader, None).await
        })
        .buffer_unordered(parallelism)
        .try_collect::<Vec<_>>()
        .await
        .expect("stream copy");
    started.elapsed().as_secs_f64()
}

fn s3_config(bucket: &str) -> Option<S3Config> {
    let endpoint = std::env::var("BACKSTOP_TEST_S3_ENDPOINT").ok()?;
    Some(S3Config {
        endpoint: Some(endpoint),
        bucket: bucket.to_owned(),
        prefix: String::new(),
        region: "us-east-1".to_owned(),
        access_key_id: std::env::var("BACKSTOP_TEST_S3_ACCESS_KEY").unwrap_or_default(),
        secret_access_key: std::env::var("BACKSTOP_TEST_S3_SECRET_KEY")
            .unwrap_or_default()
            .into(),
        force_path_style: true,
        part_size_mib: 16,
        parts_in_flight: 4,
    })
}

/// The raw baseline for uploads: the SDK's own `put_object` of each file from disk, in turn.
async fn raw_sdk_upload(config: &S3Config, root: &Path, files: &[(String, u64)]) -> f64 {
    use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
    use secrecy::ExposeSecret;
    let sdk = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(config.region.clone()))
        .credentials_provider(Credentials::new(
            config.access_key_id.clone(),
            config.secret_access_key.expose_secret().to_owned(),
            None,
            None,
            "bench",
        ))
        .force_path_style(true)
        .endpoint_url(config.endpoint.clone().unwrap())
        .http_client(
            aws_smithy_http_client::Builder::new()
                .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
                    aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
                ))
                .build_https(),
        )
        .build();
    let client = aws_sdk_s3::Client::from_conf(sdk);
    let started = Instant::now();
    for (key, _) in files {
        let body = aws_sdk_s3::primitives::ByteStream::from_path(root.join(key))
            .await
            .unwrap();
        client
            .put_object()
            .bucket(&config.bucket)
            .key(format!("raw/{key}"))
            .body(body)
            .send()
            .await
            .expect("raw put_object");
    }
    started.elapsed().as_secs_f64()
}

#[tokio::main]
async fn main() {
    // `cargo bench` passes `--bench`; test runners list or run bench binaries without it.
    if !std::env::args().any(|arg| arg == "--bench") {
        return;
    }
    let small = env_usize("BENCH_SMALL_FILES", 512);
    let large = env_usize("BENCH_LARGE_FILES", 16);
    let work = tempfile::tempdir().unwrap();
    let src_root: PathBuf = work.path().join("milvus");
    let files = make_dataset(&src_root, small, large);
    let total: u64 = files.iter().map(|(_, s)| s).sum();
    println!(
        "copy benchmark: {} files ({small} x 1 MiB, {large} x 32 MiB), {} MiB, {} cores",
        files.len(),
        total / MIB,
        std::thread::available_parallelism()
            .map(|p| p.get())
            .unwrap_or(1)
    );
    println!("| path | Backstop | MiB/s | baseline | MiB/s |");
    println!("|---|---|---|---|---|");
    let source = LocalStore::new(&src_root);

    // local -> local: three rounds, each step into a fresh directory removed afterwards, and
    // the median of each (background writeback makes single local runs noisy).
    let shell = |script: String| {
        settle();
        let started = Instant::now();
        let status = std::process::Command::new("sh")
            .arg("-c")
            .arg(script)
            .status()
            .unwrap();
        assert!(status.success());
        started.elapsed().as_secs_f64()
    };
    let (src, out) = (src_root.display(), work.path().join("out"));
    let out_s = out.display().to_string();
    let mut rounds: [Vec<f64>; 4] = Default::default();
    for _ in 0..3 {
        rounds[0].push(shell(format!("cp -r '{src}' '{out_s}'")));
        std::fs::remove_dir_all(&out).unwrap();
        // Backstop makes every object durable before the manifest; plain `cp` does not.
        rounds[1].push(shell(format!(
            "cp -r '{src}' '{out_s}' && sync -f '{out_s}'"
        )));
        std::fs::remove_dir_all(&out).unwrap();
        for (i, parallelism) in [(2, 1), (3, 8)] {
            let dest = LocalStore::new(&out);
            settle();
            rounds[i].push(copy_all(&source, &dest, &files, parallelism, "").await);
            std::fs::remove_dir_all(&out).unwrap();
        }
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        mib_per_s(total, v[v.len() / 2])
    };
    let [cp, cp_sync, ours1, ours8] = rounds.map(median);
    for (parallelism, ours) in [(1, ours1), (8, ours8)] {
        println!(
            "| local → local | objects::copy + sync, {parallelism} at once | {ours:.0} | `cp -r` / `cp -r && sync -f` | {cp:.0} / {cp_sync:.0} |"
        );
    }

    let Some(up) = s3_config("bench-up") else {
        println!("\n(S3 rows need BACKSTOP_TEST_S3_ENDPOINT and keys: see the header of benches/copy.rs)");
        return;
    };
    let up_store = S3Store::new(&up);
    up_store.create_bucket_if_missing().await.unwrap();
    let raw = raw_sdk_upload(&up, &src_root, &files).await;
    let up_dyn: DynObjectStore = Arc::new(up_store);
    let ours = copy_all(&source, up_dyn.as_ref(), &files, 8, "ours/").await;
    println!(
        "| local → S3 | streaming multipart put, 8 at once | {:.0} | SDK `put_object` from file, one at a time | {:.0} |",
        mib_per_s(total, ours),
        mib_per_s(total, raw)
    );

    let down = s3_config("bench-down").unwrap();
    let down_store = S3Store::new(&down);
    down_store.create_bucket_if_missing().await.unwrap();
    let uploaded: Vec<(String, u64)> = files
        .iter()
        .map(|(key, size)| (format!("ours/{key}"), *size))
        .collect();
    let streamed = stream_all(up_dyn.as_ref(), &down_store, &uploaded, 8, "streamed/").await;
    let server_side = copy_all(up_dyn.as_ref(), &down_store, &uploaded, 8, "copied/").await;
    println!(
        "| S3 → S3, same endpoint | server-side CopyObject, 8 at once | {:.0} | get + put through this process, 8 at once | {:.0} |",
        mib_per_s(total, server_side),
        mib_per_s(total, streamed)
    );
}
