//! The object-storage suite: the same assertions against a local directory and the real S3
//! server (SeaweedFS) started by `scripts/test`, one fresh bucket per test.

use std::sync::Arc;

use backstop::config::S3Config;
use backstop::objects::{
    self, Checksum, DynObjectStore, LocalStore, ObjectError, ObjectStore, S3Store,
};
use bytes::Bytes;
use secrecy::SecretString;
use tempfile::TempDir;

use crate::support::{shared_s3, unique};

#[derive(Clone, Copy, Debug)]
enum Kind {
    Local,
    S3,
}

/// Part size of the S3 stores under test: the S3 minimum, so multipart is cheap to reach.
const PART: usize = 5 * 1024 * 1024;

struct Fixture {
    store: DynObjectStore,
    _dir: Option<TempDir>,
}

fn s3_config(bucket: &str, prefix: &str) -> S3Config {
    let s3 = shared_s3();
    S3Config {
        endpoint: Some(s3.endpoint),
        bucket: bucket.to_owned(),
        prefix: prefix.to_owned(),
        region: "us-east-1".into(),
        access_key_id: s3.access_key,
        secret_access_key: SecretString::from(s3.secret_key),
        force_path_style: true,
        part_size_mib: 5,
        parts_in_flight: 2,
    }
}

async fn s3_store(prefix: &str) -> S3Store {
    let store = S3Store::new(&s3_config(&unique("bst").replace('_', "-"), prefix));
    store
        .create_bucket_if_missing()
        .await
        .expect("create test bucket");
    store
}

async fn fixture(kind: Kind) -> Fixture {
    match kind {
        Kind::Local => {
            let dir = tempfile::tempdir().unwrap();
            Fixture {
                store: Arc::new(LocalStore::new(dir.path().join("root"))),
                _dir: Some(dir),
            }
        }
        Kind::S3 => Fixture {
            store: Arc::new(s3_store("some/prefix").await),
            _dir: None,
        },
    }
}

/// Runs `$name(Kind)` as `$name::local` and `$name::s3`.
macro_rules! on_both_stores {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn local() { super::$name(super::Kind::Local).await }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn s3() { super::$name(super::Kind::S3).await }
            }
        )*
    };
}

fn data(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

fn reader(bytes: Vec<u8>) -> objects::ObjectReader {
    Box::pin(std::io::Cursor::new(bytes))
}

async fn put_get_head_round_trip(kind: Kind) {
    let f = fixture(kind).await;
    let body = data(1000, 1);
    let written = f
        .store
        .put("a/b/c.bin", reader(body.clone()), None)
        .await
        .unwrap();
    assert_eq!(written.size, 1000);
    assert_eq!(written.checksum, Checksum::of(&body));
    assert_eq!(
        objects::get_bytes(f.store.as_ref(), "a/b/c.bin")
            .await
            .unwrap(),
        body
    );
    let meta = f.store.head("a/b/c.bin").await.unwrap().unwrap();
    assert_eq!(meta.size, 1000);
    assert_eq!(f.store.head("a/b/missing").await.unwrap(), None);
    assert!(matches!(
        f.store.get("a/b/missing").await,
        Err(ObjectError::NotFound(_))
    ));
    // Empty objects are objects too.
    let empty = f
        .store
        .put("empty", reader(Vec::new()), None)
        .await
        .unwrap();
    assert_eq!(empty.size, 0);
    assert_eq!(f.store.head("empty").await.unwrap().unwrap().size, 0);
    // Overwrite replaces.
    objects::put_bytes(f.store.as_ref(), "a/b/c.bin", Bytes::from_static(b"new"))
        .await
        .unwrap();
    assert_eq!(
        objects::get_bytes(f.store.as_ref(), "a/b/c.bin")
            .await
            .unwrap(),
        b"new"
    );
    assert!(matches!(
        f.store.put("../escape", reader(vec![1]), None).await,
        Err(ObjectError::InvalidKey(_))
    ));
}

async fn multipart_object_larger_than_one_part(kind: Kind) {
    let f = fixture(kind).await;
    let body = data(2 * PART + 12345, 7);
    let written = f
        .store
        .put(
            "big/object",
            reader(body.clone()),
            Some(Checksum::of(&body)),
        )
        .await
        .unwrap();
    assert_eq!(written.size, body.len() as u64);
    assert_eq!(written.checksum, Checksum::of(&body));
    assert_eq!(
        f.store.head("big/object").await.unwrap().unwrap().size,
        body.len() as u64
    );
    let read = objects::get_bytes(f.store.as_ref(), "big/object")
        .await
        .unwrap();
    assert!(read == body, "multipart content differs");
    objects::verify(f.store.as_ref(), "big/object", Checksum::of(&body))
        .await
        .unwrap();
}

async fn listing_paginates_in_key_order(kind: Kind) {
    let f = fixture(kind).await;
    for i in 0..25 {
        objects::put_bytes(
            f.store.as_ref(),
            &format!("list/p/{i:03}"),
            Bytes::from(vec![i as u8; i]),
        )
        .await
        .unwrap();
    }
    objects::put_bytes(f.store.as_ref(), "list/q/outside", Bytes::from_static(b"x"))
        .await
        .unwrap();
    objects::put_bytes(f.store.as_ref(), "list/pp", Bytes::from_static(b"x"))
        .await
        .unwrap();

    let mut keys = Vec::new();
    let mut pages = 0;
    let mut next = None;
    loop {
        let page = f.store.list("list/p/", next, 10).await.unwrap();
        assert!(page.objects.len() <= 10);
        pages += 1;
        keys.extend(page.objects.iter().map(|o| (o.key.clone(), o.size)));
        match page.next {
            Some(token) => next = Some(token),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    let expected: Vec<(String, u64)> = (0..25)
        .map(|i| (format!("list/p/{i:03}"), i as u64))
        .collect();
    assert_eq!(keys, expected);
    // A prefix that is not a directory boundary matches by string prefix.
    let all = objects::list_all(f.store.as_ref(), "list/p").await.unwrap();
    assert_eq!(all.len(), 26);
    assert!(f
        .store
        .list("nothing/", None, 10)
        .await
        .unwrap()
        .objects
        .is_empty());
}

async fn delete_many_removes_and_ignores_missing(kind: Kind) {
    let f = fixture(kind).await;
    for k in ["d/1", "d/2", "d/sub/3", "keep/4"] {
        objects::put_bytes(f.store.as_ref(), k, Bytes::from_static(b"x"))
            .await
            .unwrap();
    }
    f.store
        .delete_many(&["d/1".into(), "d/sub/3".into(), "d/never-existed".into()])
        .await
        .unwrap();
    let left: Vec<String> = objects::list_all(f.store.as_ref(), "")
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.key)
        .collect();
    assert_eq!(left, vec!["d/2".to_string(), "keep/4".into()]);
    // More keys than one DeleteObjects call takes.
    let many: Vec<String> = (0..1001).map(|i| format!("m/{i}")).collect();
    f.store.delete_many(&many).await.unwrap();
}

async fn checksum_mismatch_is_detected(kind: Kind) {
    let f = fixture(kind).await;
    let body = data(4096, 3);
    let wrong = Checksum::of(b"something else");
    match f
        .store
        .put("c/small", reader(body.clone()), Some(wrong))
        .await
    {
        Err(ObjectError::ChecksumMismatch {
            key,
            expected,
            actual,
        }) => {
            assert_eq!(key, "c/small");
            assert_eq!(expected, wrong);
            assert_eq!(actual, Checksum::of(&body));
        }
        other => panic!("expected a checksum mismatch, got {other:?}"),
    }
    assert_eq!(
        f.store.head("c/small").await.unwrap(),
        None,
        "a refused put leaves nothing"
    );

    let big = data(PART + 10, 4);
    assert!(matches!(
        f.store.put("c/big", reader(big), Some(wrong)).await,
        Err(ObjectError::ChecksumMismatch { .. })
    ));
    assert_eq!(
        f.store.head("c/big").await.unwrap(),
        None,
        "an aborted multipart leaves nothing"
    );

    // An object changed after it was written fails verification.
    let written = f
        .store
        .put("c/tampered", reader(body.clone()), None)
        .await
        .unwrap();
    let mut tampered = body.clone();
    tampered[100] ^= 0xff;
    f.store
        .put("c/tampered", reader(tampered), None)
        .await
        .unwrap();
    match objects::verify(f.store.as_ref(), "c/tampered", written.checksum).await {
        Err(ObjectError::ChecksumMismatch { key, .. }) => assert_eq!(key, "c/tampered"),
        other => panic!("expected a checksum mismatch, got {other:?}"),
    }
}

async fn copy_between_stores(kind: Kind) {
    let source = fixture(kind).await;
    let dest = fixture(kind).await;
    let body = data(PART + 99, 5);
    let original = source
        .store
        .put("src/obj", reader(body.clone()), None)
        .await
        .unwrap();
    // Same kind of store on the same endpoint: copied without streaming through us.
    let copied = dest
        .store
        .copy_from(source.store.as_ref(), "src/obj", "dst/obj")
        .await
        .unwrap();
    let copied = copied.expect("same-endpoint copy is done by the storage");
    assert_eq!(copied, original);
    objects::verify(dest.store.as_ref(), "dst/obj", original.checksum)
        .await
        .unwrap();
    // The durability barrier after copies; a copy deleted before it is no error.
    dest.store
        .copy_from(source.store.as_ref(), "src/obj", "dst/gone")
        .await
        .unwrap();
    dest.store
        .delete_many(&["dst/gone".to_owned()])
        .await
        .unwrap();
    dest.store.sync().await.unwrap();
    objects::verify(dest.store.as_ref(), "dst/obj", original.checksum)
        .await
        .unwrap();
    assert!(matches!(
        dest.store
            .copy_from(source.store.as_ref(), "src/missing", "dst/x")
            .await,
        Err(ObjectError::NotFound(_))
    ));
    // Across kinds the copy streams.
    let other = fixture(match kind {
        Kind::Local => Kind::S3,
        Kind::S3 => Kind::Local,
    })
    .await;
    assert_eq!(
        other
            .store
            .copy_from(source.store.as_ref(), "src/obj", "x")
            .await
            .unwrap(),
        None
    );
    let streamed = objects::copy(
        source.store.as_ref(),
        "src/obj",
        other.store.as_ref(),
        "streamed/obj",
    )
    .await
    .unwrap();
    assert_eq!(streamed, original);
}

on_both_stores!(
    put_get_head_round_trip,
    multipart_object_larger_than_one_part,
    listing_paginates_in_key_order,
    delete_many_removes_and_ignores_missing,
    checksum_mismatch_is_detected,
    copy_between_stores,
);

#[tokio::test]
async fn s3_prefix_is_invisible_to_callers() {
    let store = s3_store("root/deeper").await;
    objects::put_bytes(&store, "k/1", Bytes::from_static(b"1"))
        .await
        .unwrap();
    let listed = objects::list_all(&store, "k/").await.unwrap();
    assert_eq!(
        listed.iter().map(|o| o.key.as_str()).collect::<Vec<_>>(),
        ["k/1"]
    );
    // The same bucket without the prefix sees the full key.
    let bare = S3Store::new(&s3_config(store.bucket(), ""));
    assert!(bare.head("root/deeper/k/1").await.unwrap().is_some());
    store.ping().await.unwrap();
}

#[tokio::test]
async fn unreachable_s3_fails_fast_with_a_clear_error() {
    let mut config = s3_config("nobucket", "");
    config.endpoint = Some("http://127.0.0.1:1".into());
    let store = S3Store::new(&config);
    let err = store.ping().await.unwrap_err();
    let text = err.to_string();
    assert!(text.contains("HeadBucket"), "{text}");
    assert!(!text.contains("SECRETTEST"), "{text}");
}
