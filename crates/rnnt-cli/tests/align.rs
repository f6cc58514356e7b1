//! `rnnt align` end to end: the table, the JSON list and the PNG heatmap on golden cases, an
//! impossible item, and a bad `--item`.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use ndarray::{Array1, Array2, Array4};
use ndarray_npy::NpzWriter;
use serde_json::Value;

fn rnnt(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rnnt"))
        .args(args)
        .output()
        .expect("the rnnt binary runs")
}

fn golden(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../../tests/golden/{name}.npz"));
    path.to_str().unwrap().to_string()
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("rnnt-align-tests-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn worked_example_1_prints_table_json_and_picture() {
    let (json, png) = (scratch("example1.json"), scratch("example1.png"));
    let run = rnnt(&[
        "align",
        &golden("seed_worked_example_1"),
        "--json",
        json.to_str().unwrap(),
        "--png",
        png.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(run.status.success(), "{run:?}");
    // Label 1 (id 0) at frame 0, label 2 (id 1) at frame 1, final blank at frame 2 = T − 1.
    let rows: Vec<Vec<&str>> = stdout
        .lines()
        .map(|line| line.split_whitespace().collect())
        .collect();
    assert!(rows.iter().any(|r| r[..3] == ["1", "0", "0"]), "{stdout}");
    assert!(rows.iter().any(|r| r[..3] == ["2", "1", "1"]), "{stdout}");
    assert!(stdout.contains("final blank at frame 2"), "{stdout}");

    let list = read_json(&json);
    let items = list.as_array().unwrap();
    assert_eq!(items.len(), 1);
    let item = &items[0];
    assert_eq!(
        item["path"],
        serde_json::json!([[0, 0], [0, 1], [1, 1], [1, 2], [2, 2]])
    );
    assert_eq!(item["emit_frames"], serde_json::json!([0, 1]));
    let score = item["score"].as_f64().unwrap();
    let log_prob = item["log_prob"].as_f64().unwrap();
    assert!(score <= log_prob && score > -1e-3, "{item}");

    // The picture: a PNG of the documented size (3 × 3 nodes: the minimum 360 × 240 plot area
    // plus 240 × 110 px of axes and colour bar) showing the path's colour and viridis' yellow.
    let image = image::open(&png).expect("a readable PNG").to_rgb8();
    assert_eq!(image.dimensions(), (600, 350));
    let has = |rgb: [u8; 3]| image.pixels().any(|p| p.0 == rgb);
    assert!(has([230, 25, 45]), "the best path is drawn");
    assert!(has([254, 232, 37]), "occupancy 1 is drawn in yellow");
    assert!(stdout.contains("600x350"), "{stdout}");
}

#[test]
fn every_item_or_the_chosen_one() {
    let json = scratch("batch.json");
    let run = rnnt(&[
        "align",
        &golden("medium_batch"),
        "--json",
        json.to_str().unwrap(),
    ]);
    assert!(run.status.success(), "{run:?}");
    let list = read_json(&json);
    assert_eq!(list.as_array().unwrap().len(), 8);
    // Item 0's emission frames; the Python package's test asserts the same list.
    assert_eq!(
        list[0]["emit_frames"],
        serde_json::json!([1, 1, 6, 8, 8, 17, 17, 19, 21, 23, 24, 25, 32, 36, 39])
    );
    for (b, item) in list.as_array().unwrap().iter().enumerate() {
        assert_eq!(item["item"], b);
        let path = item["path"].as_array().unwrap();
        let frames = item["frames"].as_u64().unwrap() as usize;
        let labels = item["labels"].as_array().unwrap().len();
        assert_eq!(path.len(), frames + labels);
        assert_eq!(path[0], serde_json::json!([0, 0]));
        assert_eq!(
            path[path.len() - 1],
            serde_json::json!([frames - 1, labels])
        );
        assert_eq!(item["emit_frames"].as_array().unwrap().len(), labels);
    }

    let (one, png) = (scratch("item3.json"), scratch("item3.png"));
    let run = rnnt(&[
        "align",
        &golden("medium_batch"),
        "--log-probs",
        "--item",
        "3",
        "--json",
        one.to_str().unwrap(),
        "--png",
        png.to_str().unwrap(),
    ]);
    assert!(run.status.success(), "{run:?}");
    let chosen = read_json(&one);
    assert_eq!(chosen.as_array().unwrap().len(), 1);
    assert_eq!(chosen[0]["path"], list[3]["path"]);
    // T_3 = 45 frames, U_3 = 12 labels: 45·48 and 13·48 px within the clamps.
    let image = image::open(&png).expect("a readable PNG");
    assert_eq!((image.width(), image.height()), (1200 + 240, 624 + 110));
}

#[test]
fn impossible_item_has_null_score_and_empty_path() {
    // Item 0's final blank is masked: no path; item 1 is ordinary.
    let input = scratch("impossible.npz");
    let mut log_probs = Array4::<f64>::from_elem((2, 3, 2, 3), (1f64 / 3.0).ln());
    log_probs[(0, 2, 1, 0)] = f64::NEG_INFINITY;
    let mut npz = NpzWriter::new(File::create(&input).unwrap());
    npz.add_array("log_probs", &log_probs).unwrap();
    npz.add_array("targets", &Array2::<i32>::from_elem((2, 1), 1))
        .unwrap();
    npz.add_array("logit_lengths", &Array1::<i32>::from_elem(2, 3))
        .unwrap();
    npz.add_array("target_lengths", &Array1::<i32>::from_elem(2, 1))
        .unwrap();
    npz.finish().unwrap();
    let (json, png) = (scratch("impossible.json"), scratch("impossible.png"));
    let run = rnnt(&[
        "align",
        input.to_str().unwrap(),
        "--log-probs",
        "--blank",
        "0",
        "--json",
        json.to_str().unwrap(),
        "--png",
        png.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(run.status.success(), "{run:?}");
    assert!(stdout.contains("impossible (P = 0)"), "{stdout}");
    let list = read_json(&json);
    assert_eq!(list[0]["score"], Value::Null);
    assert_eq!(list[0]["path"], serde_json::json!([]));
    assert!(list[1]["score"].as_f64().unwrap() < 0.0);
    assert!(image::open(&png).is_ok());
}

#[test]
fn item_out_of_range_exits_2() {
    let run = rnnt(&["align", &golden("seed_worked_example_1"), "--item", "1"]);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("--item = 1") && stderr.contains("B = 1"),
        "{stderr}"
    );
}
