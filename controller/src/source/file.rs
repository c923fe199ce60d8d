//! The manifests directory: every `*.yaml`, `*.yml` and `*.json` file under it
//! (recursively), multi-document, parsed into objects. A file that fails to parse keeps
//! the objects it last produced; a document that fails keeps its object's last good
//! version; a deleted file takes its objects with it.

use std::{
    collections::BTreeMap,
    fs, io,
    path::{Path, PathBuf},
};

use notify::{RecursiveMode, Watcher};
use serde::Deserialize;
use tokio::sync::mpsc;

use super::{Source, trim};
use crate::{
    addressing::fnv1a,
    resources::{Object, ObjectRef, one_line, parse_document},
    store::Store,
};

/// Extensions read from the directory.
pub const EXTENSIONS: [&str; 3] = ["yaml", "yml", "json"];

#[derive(Debug)]
struct FileState {
    content_hash: u64,
    objects: Vec<Object>,
}

/// The parsed contents of a manifests directory.
#[derive(Debug)]
pub struct ManifestDir {
    root: PathBuf,
    files: BTreeMap<PathBuf, FileState>,
    /// Objects defined by more than one file, already reported.
    duplicates: BTreeMap<ObjectRef, Vec<PathBuf>>,
}

impl ManifestDir {
    /// A directory not read yet.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self {
            root: root.into(),
            files: BTreeMap::new(),
            duplicates: BTreeMap::new(),
        }
    }

    /// The directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Reads the directory again; returns true when any object may have changed. Only
    /// files whose content changed are parsed.
    pub fn rescan(&mut self) -> bool {
        let mut found = Vec::new();
        if let Err(e) = walk(&self.root, &mut found) {
            tracing::warn!(dir = %self.root.display(), error = %e, "cannot list the manifests directory; keeping what was read before");
            return false;
        }
        let mut changed = false;
        let before = self.files.len();
        self.files.retain(|p, _| found.contains(p));
        if self.files.len() != before {
            changed = true;
        }
        for path in found {
            let bytes = match fs::read(&path) {
                Ok(b) => b,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    changed |= self.files.remove(&path).is_some();
                    continue;
                }
                Err(e) => {
                    tracing::warn!(
                        "{}: cannot read: {e}; keeping the objects it last produced",
                        path.display()
                    );
                    continue;
                }
            };
            let hash = fnv1a(&bytes);
            if self
                .files
                .get(&path)
                .is_some_and(|f| f.content_hash == hash)
            {
                continue;
            }
            let previous = self
                .files
                .remove(&path)
                .map(|f| f.objects)
                .unwrap_or_default();
            let objects = parse_file(&path, &bytes, previous);
            self.files.insert(
                path,
                FileState {
                    content_hash: hash,
                    objects,
                },
            );
            changed = true;
        }
        if changed {
            self.report_duplicates();
        }
        changed
    }

    /// Warns once about each object defined in several files (the last path wins).
    fn report_duplicates(&mut self) {
        let mut defined: BTreeMap<ObjectRef, Vec<PathBuf>> = BTreeMap::new();
        for (path, state) in &self.files {
            for object in &state.objects {
                defined
                    .entry(object.object_ref())
                    .or_default()
                    .push(path.clone());
            }
        }
        defined.retain(|_, paths| paths.len() > 1);
        for (object, paths) in &defined {
            if self.duplicates.get(object) != Some(paths) {
                let used = paths
                    .last()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default();
                let all: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
                tracing::warn!(
                    "{used}: {object} is defined in several files ({}); using this one",
                    all.join(", ")
                );
            }
        }
        self.duplicates = defined;
    }

    /// Builds a store from every file's objects, and the file each object came from. When
    /// two files define the same object, the later path wins (with a warning).
    pub fn store(&self) -> (Store, BTreeMap<ObjectRef, PathBuf>) {
        let mut store = Store::default();
        let mut origins: BTreeMap<ObjectRef, PathBuf> = BTreeMap::new();
        for (path, state) in &self.files {
            for object in &state.objects {
                origins.insert(object.object_ref(), path.clone());
                store.insert(object.clone());
            }
        }
        (store, origins)
    }
}

impl Source for ManifestDir {
    fn refresh(&mut self) -> bool {
        self.rescan()
    }

    fn store(&self) -> Store {
        ManifestDir::store(self).0
    }

    /// The file defining the object (the last one, when several do).
    fn origin(&self, object: &ObjectRef) -> String {
        self.files
            .iter()
            .rev()
            .find(|(_, state)| state.objects.iter().any(|o| &o.object_ref() == object))
            .map_or_else(
                || "<unknown file>".to_string(),
                |(p, _)| p.display().to_string(),
            )
    }
}

/// Watches `root` recursively: one message on the receiver per file event. The watcher
/// stops when the returned guard is dropped; None (logged) when the platform cannot
/// watch, in which case only the periodic rescan notices changes.
pub fn watch(
    root: &Path,
) -> (
    Option<notify::RecommendedWatcher>,
    mpsc::UnboundedReceiver<()>,
) {
    let (tx, rx) = mpsc::unbounded_channel::<()>();
    let watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        if res.is_ok() {
            let _ = tx.send(());
        }
    })
    .and_then(|mut w| w.watch(root, RecursiveMode::Recursive).map(|()| w));
    match watcher {
        Ok(w) => (Some(w), rx),
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch the manifests directory; relying on the periodic rescan");
            (None, rx)
        }
    }
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        let hidden = entry.file_name().to_string_lossy().starts_with('.');
        if hidden {
            continue; // editor swap and lock files, `..data` symlinks of ConfigMap mounts
        }
        let meta = match fs::metadata(&path) {
            Ok(m) => m,
            Err(_) => continue, // dangling symlink or raced deletion
        };
        if meta.is_dir() {
            walk(&path, out)?;
        } else if path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| EXTENSIONS.contains(&e))
        {
            out.push(path);
        }
    }
    Ok(())
}

/// Parses one file. `previous` is what the file produced last time.
fn parse_file(path: &Path, bytes: &[u8], previous: Vec<Object>) -> Vec<Object> {
    let file = path.display();
    let text = match std::str::from_utf8(bytes) {
        Ok(t) => t,
        Err(e) => {
            tracing::warn!(
                "{file}: not UTF-8 ({e}); keeping the {} objects it last produced",
                previous.len()
            );
            return previous;
        }
    };
    let mut docs = Vec::new();
    for doc in serde_yaml_ng::Deserializer::from_str(text) {
        match serde_yaml_ng::Value::deserialize(doc) {
            Ok(v) => docs.push(v),
            Err(e) => {
                let e = one_line(&e.to_string());
                tracing::warn!(
                    "{file}: cannot parse: {e}; keeping the {} objects it last produced",
                    previous.len()
                );
                return previous;
            }
        }
    }
    let mut objects: Vec<Object> = Vec::new();
    for result in docs.into_iter().flat_map(parse_document) {
        match result {
            Ok(o) => objects.extend(trim::admit(o)),
            Err(e) => {
                let kept = e
                    .object
                    .as_ref()
                    .and_then(|r| previous.iter().find(|o| &o.object_ref() == r));
                let what = e
                    .object
                    .as_ref()
                    .map_or_else(|| "an object".to_string(), ToString::to_string);
                let keeping = if kept.is_some() {
                    "keeping its last good version"
                } else {
                    "no earlier version to keep"
                };
                tracing::warn!("{file}: {what}: {}; {keeping}", one_line(&e.reason));
                objects.extend(kept.cloned());
            }
        }
    }
    objects
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::ObjectKey;

    fn tempdir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("corridor-file-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("sub")).unwrap();
        dir
    }

    const SVC: &str = "apiVersion: v1\nkind: Service\nmetadata: {name: a, namespace: x}\nspec: {ports: [{port: 80}]}\n";

    #[test]
    fn keeps_last_good_and_forgets_deleted_files() {
        let dir = tempdir("lastgood");
        let f = dir.join("sub/a.yaml");
        fs::write(
            &f,
            format!("{SVC}---\napiVersion: v1\nkind: Pod\nmetadata: {{name: p, namespace: x}}\n"),
        )
        .unwrap();
        fs::write(dir.join("notes.txt"), "ignored").unwrap();
        let mut m = ManifestDir::new(&dir);
        assert!(m.rescan());
        assert_eq!(m.store().0.len(), 2);
        assert!(!m.rescan(), "unchanged content is not a change");

        // An invalid Service keeps its last good version; the Pod goes away.
        fs::write(&f, "apiVersion: v1\nkind: Service\nmetadata: {name: a, namespace: x}\nspec: {ports: [{port: bad}]}\n").unwrap();
        assert!(m.rescan());
        let store = m.store().0;
        assert_eq!(store.len(), 1);
        assert_eq!(
            store.services[&ObjectKey::new("x", "a")]
                .spec
                .as_ref()
                .unwrap()
                .ports
                .as_ref()
                .unwrap()[0]
                .port,
            80
        );

        // Broken YAML keeps everything the file last produced.
        fs::write(&f, "apiVersion: v1\nkind: [unclosed\n").unwrap();
        assert!(m.rescan());
        assert_eq!(m.store().0.len(), 1);

        fs::remove_file(&f).unwrap();
        assert!(m.rescan());
        assert!(m.store().0.is_empty());
        let _ = fs::remove_dir_all(&dir);
    }
}
