using System.Collections;
using System.Collections.Concurrent;
using System.Globalization;
using Google.Protobuf;
using Google.Protobuf.Reflection;
using Google.Protobuf.WellKnownTypes;
using Google.Rpc;
using Grpc.Core;
using MeshAI.Common.Errors;

namespace MeshAI.Control.Rpc;

/// <summary>One field outside its bound: where (a path such as "envelope.input_manifest.blobs[0].name"), why, and the ErrorInfo reason.</summary>
public sealed record BoundViolation(string Field, string Description, string Reason);

/// <summary>
/// The one validation layer: walks any message by its descriptor and checks every set field against
/// <see cref="RequestBoundsTable"/> — string length and characters (NUL and escape sequences never; line breaks only in multi-line text),
/// bytes length, repeated and map counts, integer and floating-point ranges (NaN and infinities never), enum values the
/// contract defines, and timestamps within years 1…9999. The interceptor runs it on every request before any service code;
/// settings writes run it again on the merged result; the envelope validator runs it on the decoded workload input.
/// <para>
/// Two passes over the same rules (issue 11: the walk was 6–7 % of the relay's CPU at 2,000 agent streams, each heartbeat's
/// whole capability report walked by reflection with a path string built per field): <see cref="Passes"/> answers yes/no
/// from a plan compiled once per message type (each field's accessor, kind and bound resolved up front; no path strings,
/// no table lookups, no allocations beyond the accessor's boxing); only a message it refuses is walked again by
/// <see cref="Check"/>, which names every violation. <c>InputFuzzTests</c> holds the two passes to the same answer.
/// </para>
/// </summary>
public sealed class RequestBounds
{
    /// <summary>Most violations reported in one error.</summary>
    public const int MaxReported = 20;

    private const int MaxDepth = 32;
    private static readonly long MinTimestampSeconds = Timestamp.FromDateTimeOffset(DateTimeOffset.MinValue).Seconds;
    private static readonly long MaxTimestampSeconds = Timestamp.FromDateTimeOffset(DateTimeOffset.MaxValue).Seconds;
    private readonly IReadOnlyDictionary<string, FieldBound> _table;
    private readonly FieldBound _fallbackText;
    private readonly FieldBound _fallbackBytes;
    private readonly FieldBound _fallbackItems;
    private readonly ConcurrentDictionary<MessageDescriptor, TypePlan> _plans = new();

    /// <summary>The bounds for the given option values.</summary>
    public RequestBounds(InputLimits input, ControlLimits control)
    {
        ArgumentNullException.ThrowIfNull(input);
        _table = RequestBoundsTable.Build(input, control);
        _fallbackText = new FieldBound { MaxChars = input.TextChars, MultiLine = true, Option = "Control:Input:TextChars (no explicit bound)" };
        _fallbackBytes = new FieldBound { MaxBytes = input.BlobBytes, Option = "Control:Input:BlobBytes (no explicit bound)" };
        _fallbackItems = new FieldBound { MaxItems = input.ListItems, Option = "Control:Input:ListItems (no explicit bound)" };
    }

    /// <summary>The bounds with every option at its default (for pure functions and tests).</summary>
    public static RequestBounds Default { get; } = new(new InputLimits(), new ControlLimits());

    /// <summary>Full field name → bound.</summary>
    public IReadOnlyDictionary<string, FieldBound> Table => _table;

    /// <summary>True when the field's kind needs an explicit bound (strings, bytes, repeated, maps, numbers); enums, bools and messages do not.</summary>
    public static bool NeedsBound(FieldDescriptor field)
    {
        ArgumentNullException.ThrowIfNull(field);
        return field.IsRepeated || field.IsMap || field.FieldType switch
        {
            FieldType.String or FieldType.Bytes => true,
            FieldType.Bool or FieldType.Enum or FieldType.Message or FieldType.Group => false,
            _ => true,
        };
    }

    /// <summary>True for message types checked as one value rather than field by field (google.protobuf.Timestamp).</summary>
    public static bool IsLeafMessage(MessageDescriptor type) => type?.FullName == Timestamp.Descriptor.FullName;

    /// <summary>Throws INVALID_ARGUMENT (reason of the first violation, every violation as a BadRequest field violation) when anything is out of bounds.</summary>
    public void Validate(IMessage message, string prefix = "")
    {
        ArgumentNullException.ThrowIfNull(message);
        if (Passes(message))
        {
            return;
        }

        var violations = Check(message, prefix);
        if (violations.Count > 0)
        {
            throw ToException(violations);
        }
    }

    /// <summary>
    /// True when <paramref name="message"/> is within every bound — the same answer as <see cref="Check"/> returning no
    /// violations, from the compiled per-type plan and without building any field path.
    /// </summary>
    public bool Passes(IMessage message)
    {
        ArgumentNullException.ThrowIfNull(message);
        return PassesMessage(message, PlanOf(message.Descriptor), 0);
    }

    /// <summary>The violations of <paramref name="message"/> (at most <see cref="MaxReported"/>), with paths under <paramref name="prefix"/>.</summary>
    public IReadOnlyList<BoundViolation> Check(IMessage message, string prefix = "")
    {
        ArgumentNullException.ThrowIfNull(message);
        var violations = new List<BoundViolation>();
        Walk(message, prefix ?? "", violations, 0);
        return violations;
    }

    /// <summary>The INVALID_ARGUMENT error for a list of violations.</summary>
    public static RpcException ToException(IReadOnlyList<BoundViolation> violations)
    {
        ArgumentNullException.ThrowIfNull(violations);
        var first = violations[0];
        var more = violations.Count > 1 ? $" (and {violations.Count - 1} more)" : "";
        var bad = new BadRequest();
        bad.FieldViolations.AddRange(violations.Select(v => new BadRequest.Types.FieldViolation { Field = v.Field, Description = v.Description }));
        return RpcErrors.Create(StatusCode.InvalidArgument, $"{first.Field}: {first.Description}{more}", first.Reason, bad);
    }

    private void Walk(IMessage message, string path, List<BoundViolation> violations, int depth)
    {
        if (depth > MaxDepth)
        {
            Add(violations, path, $"nested deeper than {MaxDepth} messages", ErrorReasons.ValueOutOfRange);
            return;
        }

        foreach (var field in message.Descriptor.Fields.InDeclarationOrder())
        {
            if (violations.Count >= MaxReported)
            {
                return;
            }

            var name = path.Length == 0 ? field.Name : path + "." + field.Name;
            if (field.ContainingOneof is { IsSynthetic: false } oneof && oneof.Accessor.GetCaseFieldDescriptor(message)?.FieldNumber != field.FieldNumber)
            {
                continue;
            }

            var value = field.Accessor.GetValue(message);
            if (field.IsMap)
            {
                CheckMap(field, (IDictionary)value, name, violations, depth);
            }
            else if (field.IsRepeated)
            {
                var list = (IList)value;
                if (list.Count == 0)
                {
                    continue;
                }

                var bound = BoundOf(field);
                if (bound.MaxItems is { } most && list.Count > most)
                {
                    Add(violations, name, $"at most {most} items (got {list.Count}; {bound.Option})", ErrorReasons.TooManyItems);
                    continue;
                }

                for (var i = 0; i < list.Count && violations.Count < MaxReported; i++)
                {
                    if (list[i] is { } item)
                    {
                        CheckValue(field, bound, item, $"{name}[{i}]", violations, depth);
                    }
                }
            }
            else if (value is not null)
            {
                CheckValue(field, NeedsBound(field) ? BoundOf(field) : NoBound, value, name, violations, depth);
            }
        }
    }

    private static readonly FieldBound NoBound = new();

    private void CheckMap(FieldDescriptor field, IDictionary map, string name, List<BoundViolation> violations, int depth)
    {
        if (map.Count == 0)
        {
            return;
        }

        var bound = BoundOf(field);
        if (bound.MaxItems is { } most && map.Count > most)
        {
            Add(violations, name, $"at most {most} entries (got {map.Count}; {bound.Option})", ErrorReasons.TooManyItems);
            return;
        }

        var valueField = field.MessageType.FindFieldByNumber(2);
        foreach (DictionaryEntry entry in map)
        {
            var key = Convert.ToString(entry.Key, CultureInfo.InvariantCulture) ?? "";
            var at = $"{name}[\"{(key.Length > 32 ? key[..32] + "…" : key)}\"]";
            CheckText(key, new FieldBound { MaxChars = bound.MaxKeyChars ?? bound.MaxChars, Option = bound.Option }, at + " (key)", violations);
            if (entry.Value is not null)
            {
                CheckValue(valueField, bound, entry.Value, at, violations, depth);
            }
        }
    }

    private void CheckValue(FieldDescriptor field, FieldBound bound, object value, string name, List<BoundViolation> violations, int depth)
    {
        switch (field.FieldType)
        {
            case FieldType.String:
                CheckText((string)value, bound, name, violations);
                break;
            case FieldType.Bytes:
                var length = ((ByteString)value).Length;
                if (bound.MaxBytes is { } maxBytes && length > maxBytes)
                {
                    Add(violations, name, $"at most {maxBytes} bytes (got {length}; {bound.Option})", ErrorReasons.FieldTooLong);
                }

                break;
            case FieldType.Enum:
                var number = Convert.ToInt32(value, CultureInfo.InvariantCulture);
                if (field.EnumType.FindValueByNumber(number) is null)
                {
                    Add(violations, name, $"{number} is not a value of {field.EnumType.FullName}", ErrorReasons.UnknownEnumValue);
                }

                break;
            case FieldType.Double or FieldType.Float:
                var real = Convert.ToDouble(value, CultureInfo.InvariantCulture);
                if (!double.IsFinite(real) || (bound.RealMin is { } lo && real < lo) || (bound.RealMax is { } hi && real > hi))
                {
                    Add(violations, name, $"a finite number between {bound.RealMin?.ToString(CultureInfo.InvariantCulture) ?? "-∞"} and " +
                                          $"{bound.RealMax?.ToString(CultureInfo.InvariantCulture) ?? "∞"} (got {real.ToString(CultureInfo.InvariantCulture)}; {bound.Option})", ErrorReasons.ValueOutOfRange);
                }

                break;
            case FieldType.Message or FieldType.Group:
                var child = (IMessage)value;
                if (child is Timestamp ts)
                {
                    if (ts.Seconds < MinTimestampSeconds || ts.Seconds > MaxTimestampSeconds || ts.Nanos is < 0 or > 999_999_999)
                    {
                        Add(violations, name, "a time between 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z", ErrorReasons.ValueOutOfRange);
                    }
                }
                else
                {
                    Walk(child, name, violations, depth + 1);
                }

                break;
            case FieldType.Bool:
                break;
            default:
                var integer = Convert.ToDecimal(value, CultureInfo.InvariantCulture);
                if ((bound.Min is { } min && integer < min) || (bound.Max is { } max && integer > max))
                {
                    Add(violations, name, $"between {bound.Min?.ToString(CultureInfo.InvariantCulture) ?? "-∞"} and {bound.Max?.ToString(CultureInfo.InvariantCulture) ?? "∞"} " +
                                          $"(got {integer.ToString(CultureInfo.InvariantCulture)}; {bound.Option})", ErrorReasons.ValueOutOfRange);
                }

                break;
        }
    }

    private static void CheckText(string text, FieldBound bound, string name, List<BoundViolation> violations)
    {
        if (TextProblem(text, bound) is { } problem)
        {
            Add(violations, name, problem.Description, problem.Reason);
        }
    }

    /// <summary>The first rule <paramref name="text"/> breaks (length, then characters), or null: the one place both passes take the text rules from.</summary>
    private static (string Description, string Reason)? TextProblem(string text, FieldBound bound)
    {
        if (bound.MaxChars is { } max && text.Length > max)
        {
            return ($"at most {max} characters (got {text.Length}; {bound.Option})", ErrorReasons.FieldTooLong);
        }

        foreach (var c in text)
        {
            if (c >= ' ' && c is not ('\u007f' or (>= '\u0080' and <= '\u009f') or '\u2028' or '\u2029'))
            {
                continue; // the common case: no control or line-separator character
            }

            if (c == '\0')
            {
                return ("must not contain NUL characters", ErrorReasons.InvalidCharacters);
            }

            if (!bound.MultiLine && (char.IsControl(c) || c is '\u2028' or '\u2029'))
            {
                return ("must be a single line without control characters", ErrorReasons.InvalidCharacters);
            }

            if (bound.MultiLine && char.IsControl(c) && c is not ('\t' or '\n' or '\v' or '\f' or '\r'))
            {
                return ("must not contain control characters other than tabs and line breaks", ErrorReasons.InvalidCharacters);
            }
        }

        return null;
    }

    private FieldBound BoundOf(FieldDescriptor field)
    {
        if (_table.TryGetValue(field.FullName, out var bound))
        {
            return bound;
        }

        return field.IsRepeated || field.IsMap ? _fallbackItems with { MaxChars = _fallbackText.MaxChars, MultiLine = true, MaxBytes = _fallbackBytes.MaxBytes }
            : field.FieldType == FieldType.Bytes ? _fallbackBytes
            : field.FieldType == FieldType.String ? _fallbackText
            : NoBound;
    }

    private static void Add(List<BoundViolation> violations, string field, string description, string reason)
    {
        if (violations.Count < MaxReported)
        {
            violations.Add(new BoundViolation(field, description, reason));
        }
    }

    // ---- the compiled pass (Passes) ----

    private enum Kind
    {
        Text,
        Bytes,
        Enum,
        Real,
        Integer,
        Bool,
        Timestamp,
        Message,
    }

    /// <summary>One message type's fields, resolved once: what <see cref="Walk"/> looks up per field per message.</summary>
    private sealed class TypePlan(FieldPlan[] fields)
    {
        public FieldPlan[] Fields { get; } = fields;
    }

    /// <summary>One field: its accessor, its (or its map value's) kind, its bound, and the plan of the message it holds.</summary>
    private sealed class FieldPlan
    {
        public required FieldDescriptor Field { get; init; }

        public required IFieldAccessor Accessor { get; init; }

        public OneofDescriptor? Oneof { get; init; }

        public bool IsMap { get; init; }

        public bool IsRepeated { get; init; }

        /// <summary>The kind of the field's value (a map's value).</summary>
        public Kind Kind { get; init; }

        /// <summary>The descriptor of the value (a map's value field), for its enum or message type.</summary>
        public required FieldDescriptor ValueField { get; init; }

        public required FieldBound Bound { get; init; }

        /// <summary>A map key's bound.</summary>
        public FieldBound? KeyBound { get; init; }

        /// <summary>The plan of the held message type, resolved on first use (types may nest themselves).</summary>
        public TypePlan? Child { get; set; }
    }

    private TypePlan PlanOf(MessageDescriptor type) => _plans.GetOrAdd(type, Compile);

    private TypePlan Compile(MessageDescriptor type)
    {
        var fields = new List<FieldPlan>();
        foreach (var field in type.Fields.InDeclarationOrder())
        {
            var valueField = field.IsMap ? field.MessageType.FindFieldByNumber(2) : field;
            var bound = field.IsMap || field.IsRepeated || NeedsBound(field) ? BoundOf(field) : NoBound;
            fields.Add(new FieldPlan
            {
                Field = field,
                Accessor = field.Accessor,
                Oneof = field.ContainingOneof is { IsSynthetic: false } oneof ? oneof : null,
                IsMap = field.IsMap,
                IsRepeated = field.IsRepeated && !field.IsMap,
                Kind = KindOf(valueField),
                ValueField = valueField,
                Bound = bound,
                KeyBound = field.IsMap ? new FieldBound { MaxChars = bound.MaxKeyChars ?? bound.MaxChars, Option = bound.Option } : null,
            });
        }

        return new TypePlan([.. fields]);
    }

    private static Kind KindOf(FieldDescriptor field) => field.FieldType switch
    {
        FieldType.String => Kind.Text,
        FieldType.Bytes => Kind.Bytes,
        FieldType.Enum => Kind.Enum,
        FieldType.Double or FieldType.Float => Kind.Real,
        FieldType.Bool => Kind.Bool,
        FieldType.Message or FieldType.Group => IsLeafMessage(field.MessageType) ? Kind.Timestamp : Kind.Message,
        _ => Kind.Integer,
    };

    private bool PassesMessage(IMessage message, TypePlan plan, int depth)
    {
        if (depth > MaxDepth)
        {
            return false;
        }

        foreach (var field in plan.Fields)
        {
            if (field.Oneof is { } oneof && oneof.Accessor.GetCaseFieldDescriptor(message)?.FieldNumber != field.Field.FieldNumber)
            {
                continue;
            }

            var value = field.Accessor.GetValue(message);
            if (field.IsMap)
            {
                var map = (IDictionary)value;
                if (map.Count == 0)
                {
                    continue;
                }

                if (field.Bound.MaxItems is { } most && map.Count > most)
                {
                    return false;
                }

                foreach (DictionaryEntry entry in map)
                {
                    var key = entry.Key as string ?? Convert.ToString(entry.Key, CultureInfo.InvariantCulture) ?? "";
                    if (!PassesText(key, field.KeyBound!) || (entry.Value is { } item && !PassesValue(field, item, depth)))
                    {
                        return false;
                    }
                }
            }
            else if (field.IsRepeated)
            {
                var list = (IList)value;
                if (list.Count == 0)
                {
                    continue;
                }

                if (field.Bound.MaxItems is { } most && list.Count > most)
                {
                    return false;
                }

                for (var i = 0; i < list.Count; i++)
                {
                    if (list[i] is { } item && !PassesValue(field, item, depth))
                    {
                        return false;
                    }
                }
            }
            else if (value is not null && !PassesValue(field, value, depth))
            {
                return false;
            }
        }

        return true;
    }

    private bool PassesValue(FieldPlan field, object value, int depth)
    {
        var bound = field.Bound;
        switch (field.Kind)
        {
            case Kind.Text:
                return PassesText((string)value, bound);
            case Kind.Bytes:
                return bound.MaxBytes is not { } maxBytes || ((ByteString)value).Length <= maxBytes;
            case Kind.Enum:
                return field.ValueField.EnumType.FindValueByNumber(Convert.ToInt32(value, CultureInfo.InvariantCulture)) is not null;
            case Kind.Real:
                var real = value is float f ? f : (double)value;
                return double.IsFinite(real) && !(bound.RealMin is { } lo && real < lo) && !(bound.RealMax is { } hi && real > hi);
            case Kind.Bool:
                return true;
            case Kind.Timestamp:
                var ts = (Timestamp)value;
                return ts.Seconds >= MinTimestampSeconds && ts.Seconds <= MaxTimestampSeconds && ts.Nanos is >= 0 and <= 999_999_999;
            case Kind.Message:
                var child = (IMessage)value;
                var plan = field.Child ??= PlanOf(child.Descriptor);
                return PassesMessage(child, plan, depth + 1);
            default:
                return value switch
                {
                    int i => InRange(i, bound),
                    long l => InRange(l, bound),
                    uint u => InRange(u, bound),
                    ulong ul => ul <= long.MaxValue ? InRange((long)ul, bound) : bound.Max is null,
                    _ => false,
                };
        }
    }

    private static bool InRange(long value, FieldBound bound) => !(bound.Min is { } min && value < min) && !(bound.Max is { } max && value > max);

    private static bool PassesText(string text, FieldBound bound) =>
        (bound.MaxChars is not { } max || text.Length <= max) && (IsPlainText(text) || TextProblem(text, bound) is null);

    /// <summary>True when no character of <paramref name="text"/> is a control or line-separator character (vectorised).</summary>
    private static bool IsPlainText(string text) =>
        !text.AsSpan().ContainsAnyInRange('\u0000', '\u001f') && !text.AsSpan().ContainsAnyInRange('\u007f', '\u009f') &&
        !text.AsSpan().ContainsAnyInRange('\u2028', '\u2029');
}
