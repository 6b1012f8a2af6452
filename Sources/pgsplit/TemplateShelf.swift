import StatementClassifier

/// Statement templates handed from a session that ends to the next one of the same database on the
/// same loop (see `Session.adoptTemplates`). Each entry is labelled with the function catalog
/// generation its classifier was built from; a session built from another generation starts empty.
/// Passing templates on copies no bytes: `StatementTemplates` is a copy-on-write value.
///
/// Sendable by confinement: one shelf per event loop, used only by the client handlers on that loop.
final class TemplateShelf: @unchecked Sendable {
    private var shelved: [String: (generation: Int, templates: StatementTemplates)] = [:]

    /// What the last session of `database` passed on, when it was made from catalog `generation`.
    func templates(database: String, generation: Int) -> StatementTemplates? {
        guard let entry = shelved[database], entry.generation == generation else { return nil }
        return entry.templates
    }

    func keep(_ templates: StatementTemplates, database: String, generation: Int) {
        shelved[database] = (generation, templates)
    }
}
