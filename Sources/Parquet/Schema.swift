// The table shapes Kiln writes: flat columns of a few physical types, plus lists of integers.

/// How the writer encodes a column's values.
public enum ColumnEncoding: Sendable, Equatable {
    /// Delta for sorted integers, dictionary for repetitive values, else PLAIN (integers: DELTA).
    case automatic
    case plain
    /// RLE_DICTIONARY with a PLAIN dictionary page; falls back to PLAIN when the dictionary outgrows
    /// `ParquetWriterOptions.dictionaryPageSizeLimit`.
    case dictionary
    /// DELTA_BINARY_PACKED; integer columns only.
    case deltaBinaryPacked
}

public struct ColumnSchema: Sendable, Equatable {
    public enum Kind: Sendable, Equatable {
        /// INT64 annotated INT(64, signed).
        case int64
        /// INT32 annotated INT(32, signed).
        case int32
        case boolean
        /// BYTE_ARRAY annotated STRING (UTF8).
        case string
        /// BYTE_ARRAY without annotation.
        case bytes
        case fixedBytes(length: Int)
        /// INT64 annotated TIMESTAMP(NANOS, isAdjustedToUTC = true).
        case timestampNanos
        /// 3-level LIST of required INT64 elements.
        case int64List
        /// 3-level LIST of required INT32 elements.
        case int32List

        var physicalType: PhysicalType {
            switch self {
            case .int64, .timestampNanos, .int64List: .int64
            case .int32, .int32List: .int32
            case .boolean: .boolean
            case .string, .bytes: .byteArray
            case .fixedBytes: .fixedLenByteArray
            }
        }

        var isList: Bool { self == .int64List || self == .int32List }
    }

    public var name: String
    public var kind: Kind
    /// OPTIONAL repetition (nulls allowed); for lists, the list itself may be null.
    public var optional: Bool
    public var encoding: ColumnEncoding
    /// Overrides the writer's default codec for this column.
    public var codec: CompressionCodec?
    /// Each column chunk gets a split-block Bloom filter of its values (INT64 columns only: asking for one
    /// on another column traps), so equality lookups skip the row groups that cannot hold a value.
    public var bloomFilter: Bool

    public init(
        _ name: String, _ kind: Kind, optional: Bool = false, encoding: ColumnEncoding = .automatic,
        codec: CompressionCodec? = nil, bloomFilter: Bool = false
    ) {
        self.name = name
        self.kind = kind
        self.optional = optional
        self.encoding = encoding
        self.codec = codec
        // The writer hashes INT64 values only: any other column would silently get no filter.
        precondition(!bloomFilter || kind.physicalType == .int64, "column \(name): Bloom filters are written for INT64 columns only")
        self.bloomFilter = bloomFilter
    }

    var maxDefinitionLevel: Int { (optional ? 1 : 0) + (kind.isList ? 1 : 0) }
    var maxRepetitionLevel: Int { kind.isList ? 1 : 0 }
    var path: [String] { kind.isList ? [name, "list", "element"] : [name] }

    /// The schema elements for this column, depth-first as the footer lists them.
    var schemaElements: [SchemaElement] {
        let repetition: Repetition = optional ? .optional : .required
        switch kind {
        case .int64:
            return [
                SchemaElement(
                    name: name, type: .int64, repetition: repetition, convertedType: .int64,
                    logicalType: .integer(bitWidth: 64, signed: true))
            ]
        case .int32:
            return [
                SchemaElement(
                    name: name, type: .int32, repetition: repetition, convertedType: .int32,
                    logicalType: .integer(bitWidth: 32, signed: true))
            ]
        case .timestampNanos:
            return [
                SchemaElement(
                    name: name, type: .int64, repetition: repetition,
                    logicalType: .timestamp(unit: .nanos, adjustedToUTC: true))
            ]
        case .boolean:
            return [SchemaElement(name: name, type: .boolean, repetition: repetition)]
        case .string:
            return [
                SchemaElement(
                    name: name, type: .byteArray, repetition: repetition, convertedType: .utf8,
                    logicalType: .string)
            ]
        case .bytes:
            return [SchemaElement(name: name, type: .byteArray, repetition: repetition)]
        case .fixedBytes(let length):
            return [
                SchemaElement(
                    name: name, type: .fixedLenByteArray, typeLength: Int32(length),
                    repetition: repetition)
            ]
        case .int64List, .int32List:
            let is64 = kind == .int64List
            return [
                SchemaElement(
                    name: name, repetition: repetition, numChildren: 1, convertedType: .list,
                    logicalType: .list),
                SchemaElement(name: "list", repetition: .repeated, numChildren: 1),
                SchemaElement(
                    name: "element", type: is64 ? .int64 : .int32, repetition: .required,
                    convertedType: is64 ? .int64 : .int32,
                    logicalType: .integer(bitWidth: is64 ? 64 : 32, signed: true)),
            ]
        }
    }
}

public struct ParquetSchema: Sendable, Equatable {
    public var columns: [ColumnSchema]

    public init(_ columns: [ColumnSchema]) { self.columns = columns }

    public func index(of name: String) -> Int? { columns.firstIndex { $0.name == name } }
}
