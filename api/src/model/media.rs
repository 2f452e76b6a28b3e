//! Media columns as every answer carrying a clip shows them.

/// `media.bars` holds a JSON array of 0–31 values (or an object with a `bars`
/// array); anything else renders as no bars rather than failing the feed.
pub fn parse_bars(text: &str) -> Vec<u8> {
    let value: serde_json::Value = serde_json::from_str(text).unwrap_or_default();
    let array = match &value {
        serde_json::Value::Object(o) => o.get("bars").and_then(|b| b.as_array()),
        other => other.as_array(),
    };
    array
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_u64())
                .map(|v| v.min(31) as u8)
                .collect()
        })
        .unwrap_or_default()
}
