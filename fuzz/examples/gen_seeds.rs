//! Regenerates `seeds/xds_resources/` from the manifests in `seeds/manifests/`: every
//! resource the controller's translator makes for each file, as `[type byte] ++ encoding`.
//!
//! Run from `fuzz/`: `CARGO_TARGET_DIR=target cargo run --example gen_seeds`.

use std::{fs, path::Path};

use corridor_controller::{
    admission::Admission,
    resources::parse_document,
    store::Store,
    translate::{TranslateOptions, translate},
};
use corridor_fuzz::{XDS_TYPE_URLS, XDS_TYPES};
use serde::Deserialize;

type Error = Box<dyn std::error::Error>;

fn main() -> Result<(), Error> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("seeds");
    let out = root.join("xds_resources");
    fs::create_dir_all(&out)?;
    let mut inputs: Vec<_> = fs::read_dir(root.join("manifests"))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    inputs.sort();
    let mut written = 0;
    for path in inputs {
        written += write_seeds(&path, &out)?;
    }
    println!("wrote {written} seeds to {}", out.display());
    Ok(())
}

/// Translates one manifest file and writes a seed per resource; returns how many.
fn write_seeds(path: &Path, out: &Path) -> Result<usize, Error> {
    let mut store = Store::default();
    let text = fs::read_to_string(path)?;
    for doc in serde_yaml_ng::Deserializer::from_str(&text) {
        let Ok(value) = serde_yaml_ng::Value::deserialize(doc) else {
            break; // deliberately broken seeds
        };
        for object in parse_document(value).into_iter().flatten() {
            store.insert(object);
        }
    }
    let opts = TranslateOptions::default();
    Admission::default().admit(&mut store, &opts, &|_| String::new());
    let snapshot = translate(&store, &opts);
    let mut written = 0;
    for (tag, url) in XDS_TYPE_URLS.into_iter().enumerate() {
        let Some(types) = snapshot.get(url) else {
            continue;
        };
        for (name, resource) in &types.resources {
            let file: String = name
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                        c
                    } else {
                        '_'
                    }
                })
                .collect();
            let mut bytes = vec![tag as u8];
            bytes.extend_from_slice(&resource.body.value);
            let from = path.file_stem().unwrap_or_default().to_string_lossy();
            fs::write(out.join(format!("{from}-{}-{file}", XDS_TYPES[tag])), bytes)?;
            written += 1;
        }
    }
    Ok(written)
}
