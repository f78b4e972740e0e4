/// Text from a request, shortened for an error message: a hostile request must not make its own refusal huge.
public func clip(_ text: String, _ limit: Int = 120) -> String {
    text.utf8.count <= limit ? text : String(decoding: Array(text.utf8.prefix(limit)), as: UTF8.self) + "…"
}
