using System.Collections;
using System.Reflection;
using Google.Protobuf;
using Google.Protobuf.Reflection;
using Google.Protobuf.WellKnownTypes;
using Google.Rpc;
using Grpc.Core;
using Grpc.Net.Client;
using MeshAI.Common.Errors;
using MeshAI.Contracts.Relay.V1;
using MeshAI.Control.Rpc;

namespace MeshAI.Integration.Tests.Hardening;

/// <summary>A field reachable from a request message: the chain of fields from the root message to it.</summary>
public sealed record FieldPath(MessageDescriptor Root, IReadOnlyList<FieldDescriptor> Fields)
{
    public FieldDescriptor Field => Fields[^1];

    /// <summary>The path the server names in a violation: "settings.credits.tier_rates[0].burn_micro_per_min".</summary>
    public string Name => string.Join(".", Fields.Select((f, i) => i < Fields.Count - 1 && f.IsRepeated ? f.Name + "[0]" : f.Name));

    public override string ToString() => Root.Name + "." + Name;
}

/// <summary>One probe: a request with one field set to a chosen value, and what the server should name.</summary>
public sealed record Probe(FieldPath Path, string Kind, IMessage Request, string ExpectedField, string? ExpectedReason);

/// <summary>
/// Reflection over the generated descriptors: every service of the contracts assembly, every field reachable from every
/// request message, and requests that put one field just past (or exactly at) its bound.
/// </summary>
public static class RequestProbes
{
    private static readonly long MaxTimestampSeconds = Timestamp.FromDateTimeOffset(DateTimeOffset.MaxValue).Seconds;

    /// <summary>Every gRPC service descriptor in MeshAI.Contracts (a new service is picked up without editing this test).</summary>
    public static IReadOnlyList<ServiceDescriptor> Services() =>
        typeof(MeshAI.Contracts.Job.V1.JobService).Assembly.GetTypes()
            .Select(t => t.GetProperty("Descriptor", BindingFlags.Public | BindingFlags.Static))
            .Where(p => p?.PropertyType == typeof(ServiceDescriptor))
            .Select(p => (ServiceDescriptor)p!.GetValue(null)!)
            .OrderBy(s => s.FullName, StringComparer.Ordinal)
            .ToList();

    /// <summary>Every field reachable from <paramref name="root"/>, depth first; maps and timestamps are leaves.</summary>
    public static IEnumerable<FieldPath> Fields(MessageDescriptor root)
    {
        var found = new List<FieldPath>();
        void Walk(MessageDescriptor type, List<FieldDescriptor> prefix, HashSet<string> onPath)
        {
            foreach (var field in type.Fields.InDeclarationOrder())
            {
                var path = new List<FieldDescriptor>(prefix) { field };
                found.Add(new FieldPath(root, path));
                if (field.FieldType == FieldType.Message && !field.IsMap && !RequestBounds.IsLeafMessage(field.MessageType) && onPath.Add(field.MessageType.FullName))
                {
                    Walk(field.MessageType, path, onPath);
                    onPath.Remove(field.MessageType.FullName);
                }
            }
        }

        Walk(root, [], [root.FullName]);
        return found;
    }

    /// <summary>Probes that put <paramref name="path"/>'s field just past its bound (several for strings and lists).</summary>
    public static IEnumerable<Probe> OverBound(FieldPath path, FieldBound? bound)
    {
        var f = path.Field;
        if (f.IsMap)
        {
            var most = bound?.MaxItems ?? 0;
            yield return Build(path, "too many entries", m => FillMap(m, f, most + 1, "k", "v"), path.Name, ErrorReasons.TooManyItems);
            yield return Build(path, "key too long", m => FillMap(m, f, 1, new string('k', (bound?.MaxKeyChars ?? 0) + 1), "v"), null, ErrorReasons.FieldTooLong);
            yield return Build(path, "value too long", m => FillMap(m, f, 1, "k", new string('v', (bound?.MaxChars ?? 0) + 1)), null, ErrorReasons.FieldTooLong);
            yield break;
        }

        if (f.IsRepeated)
        {
            if (bound?.MaxItems is { } items)
            {
                yield return Build(path, "too many items", m => Fill(m, f, items + 1, Small(f, bound)), path.Name, ErrorReasons.TooManyItems);
            }

            foreach (var (kind, value, reason) in ItemOver(f, bound))
            {
                yield return Build(path, kind, m => Fill(m, f, 1, value), path.Name + "[0]", reason);
            }

            yield break;
        }

        foreach (var (kind, value, reason) in ItemOver(f, bound))
        {
            yield return Build(path, kind, m => f.Accessor.SetValue(m, value), path.Name, reason);
        }
    }

    /// <summary>A probe that puts <paramref name="path"/>'s field exactly at its bound (null when the field has nothing to fill).</summary>
    public static Probe? AtBound(FieldPath path, FieldBound? bound)
    {
        var f = path.Field;
        if (bound is null || f.FieldType is FieldType.Bool || (f.FieldType == FieldType.Message && !f.IsRepeated && !RequestBounds.IsLeafMessage(f.MessageType)))
        {
            return null;
        }

        if (f.IsMap)
        {
            return Build(path, "at bound", m => FillMap(m, f, bound.MaxItems ?? 1, new string('k', bound.MaxKeyChars ?? 1), new string('v', bound.MaxChars ?? 1)), path.Name, null);
        }

        var value = AtMost(f, bound);
        if (f.IsRepeated)
        {
            return Build(path, "at bound", m => Fill(m, f, bound.MaxItems ?? 1, value), path.Name, null);
        }

        return Build(path, "at bound", m => f.Accessor.SetValue(m, value), path.Name, null);
    }

    private static IEnumerable<(string Kind, object Value, string Reason)> ItemOver(FieldDescriptor f, FieldBound? bound)
    {
        switch (f.FieldType)
        {
            case FieldType.String:
                yield return ("string too long", new string('a', (bound?.MaxChars ?? 0) + 1), ErrorReasons.FieldTooLong);
                yield return ("string with NUL", "a\0b", ErrorReasons.InvalidCharacters);
                yield return ("string with an escape sequence", "a\u001b[2Jb", ErrorReasons.InvalidCharacters);
                break;
            case FieldType.Bytes:
                yield return ("bytes too long", ByteString.CopyFrom(new byte[(bound?.MaxBytes ?? 0) + 1]), ErrorReasons.FieldTooLong);
                break;
            case FieldType.Enum:
                yield return ("undefined enum value", 999, ErrorReasons.UnknownEnumValue);
                break;
            case FieldType.Double:
                yield return ("NaN", double.NaN, ErrorReasons.ValueOutOfRange);
                yield return ("above the range", (bound?.RealMax ?? 0) + 1, ErrorReasons.ValueOutOfRange);
                break;
            case FieldType.Float:
                yield return ("NaN", float.NaN, ErrorReasons.ValueOutOfRange);
                yield return ("above the range", (float)((bound?.RealMax ?? 0) + 1), ErrorReasons.ValueOutOfRange);
                break;
            case FieldType.Message when RequestBounds.IsLeafMessage(f.MessageType):
                yield return ("timestamp after year 9999", new Timestamp { Seconds = MaxTimestampSeconds + 1 }, ErrorReasons.ValueOutOfRange);
                yield return ("timestamp with negative nanos", new Timestamp { Seconds = 0, Nanos = -1 }, ErrorReasons.ValueOutOfRange);
                break;
            case FieldType.Int32 or FieldType.SInt32 or FieldType.SFixed32:
                if (bound?.Max is { } max32 && max32 < int.MaxValue)
                {
                    yield return ("above the range", (int)(max32 + 1), ErrorReasons.ValueOutOfRange);
                }

                if (bound?.Min is { } min32 && min32 > int.MinValue)
                {
                    yield return ("below the range", (int)(min32 - 1), ErrorReasons.ValueOutOfRange);
                }

                break;
            case FieldType.Int64 or FieldType.SInt64 or FieldType.SFixed64:
                if (bound?.Max is { } max64 && max64 < long.MaxValue)
                {
                    yield return ("above the range", max64 + 1, ErrorReasons.ValueOutOfRange);
                }

                if (bound?.Min is { } min64 && min64 > long.MinValue)
                {
                    yield return ("below the range", min64 - 1, ErrorReasons.ValueOutOfRange);
                }

                break;
            case FieldType.UInt32 or FieldType.Fixed32:
                if (bound?.Max is { } maxU32 && maxU32 < uint.MaxValue)
                {
                    yield return ("above the range", (uint)(maxU32 + 1), ErrorReasons.ValueOutOfRange);
                }

                break;
            case FieldType.UInt64 or FieldType.Fixed64:
                if (bound?.Max is { } maxU64 && maxU64 < long.MaxValue)
                {
                    yield return ("above the range", (ulong)(maxU64 + 1), ErrorReasons.ValueOutOfRange);
                }

                break;
        }
    }

    private static object Small(FieldDescriptor f, FieldBound? bound) => f.FieldType switch
    {
        FieldType.String => "a",
        FieldType.Bytes => ByteString.CopyFrom(1),
        FieldType.Enum => 0,
        FieldType.Int32 => (int)Math.Max(0, bound?.Min ?? 0),
        FieldType.Int64 => Math.Max(0, bound?.Min ?? 0),
        FieldType.UInt32 or FieldType.Fixed32 => (uint)Math.Max(0, bound?.Min ?? 0),
        FieldType.UInt64 or FieldType.Fixed64 => (ulong)Math.Max(0, bound?.Min ?? 0),
        FieldType.Double => 0d,
        FieldType.Float => 0f,
        FieldType.Bool => false,
        _ => f.MessageType.Parser.ParseFrom(ByteString.Empty),
    };

    private static object AtMost(FieldDescriptor f, FieldBound bound) => f.FieldType switch
    {
        FieldType.String => new string('a', bound.MaxChars ?? 1),
        FieldType.Bytes => ByteString.CopyFrom(new byte[bound.MaxBytes ?? 1]),
        FieldType.Int32 => (int)Math.Min(int.MaxValue, bound.Max ?? 0),
        FieldType.Int64 => bound.Max ?? 0,
        FieldType.UInt32 or FieldType.Fixed32 => (uint)Math.Clamp(bound.Max ?? 0, 0, uint.MaxValue),
        FieldType.UInt64 or FieldType.Fixed64 => (ulong)Math.Max(0, bound.Max ?? 0),
        FieldType.Double => bound.RealMax ?? 0d,
        FieldType.Float => (float)(bound.RealMax ?? 0d),
        FieldType.Enum => f.EnumType.Values.Max(v => v.Number),
        FieldType.Message when RequestBounds.IsLeafMessage(f.MessageType) => new Timestamp { Seconds = MaxTimestampSeconds, Nanos = 999_999_999 },
        _ => f.MessageType.Parser.ParseFrom(ByteString.Empty),
    };

    private static void Fill(IMessage m, FieldDescriptor f, int count, object value)
    {
        var list = (IList)f.Accessor.GetValue(m);
        for (var i = 0; i < count; i++)
        {
            list.Add(value is IMessage message ? message.Descriptor.Parser.ParseFrom(message.ToByteString()) : value);
        }
    }

    private static void FillMap(IMessage m, FieldDescriptor f, int count, string key, string value)
    {
        var map = (IDictionary)f.Accessor.GetValue(m);
        for (var i = 0; i < count; i++)
        {
            // Distinct keys of the same length as the given one.
            map[count == 1 ? key : key[..Math.Max(0, key.Length - 4)] + i.ToString("D4", System.Globalization.CultureInfo.InvariantCulture)] = value;
        }
    }

    private static Probe Build(FieldPath path, string kind, Action<IMessage> set, string? expectedField, string? reason)
    {
        var root = path.Root.Parser.ParseFrom(ByteString.Empty);
        var message = root;
        foreach (var field in path.Fields.Take(path.Fields.Count - 1))
        {
            var child = field.MessageType.Parser.ParseFrom(ByteString.Empty);
            if (field.IsRepeated)
            {
                ((IList)field.Accessor.GetValue(message)).Add(child);
            }
            else
            {
                field.Accessor.SetValue(message, child);
            }

            message = child;
        }

        set(message);
        return new Probe(path, kind, root, expectedField ?? path.Name, reason);
    }

    /// <summary>Calls <paramref name="method"/> with <paramref name="request"/> over <paramref name="channel"/>; the RpcException, or null when the call succeeded.</summary>
    public static async Task<RpcException?> CallAsync(GrpcChannel channel, MethodDescriptor method, IMessage request)
    {
        var requestMarshaller = Marshallers.Create<IMessage>(m => m.ToByteArray(), bytes => method.InputType.Parser.ParseFrom(bytes));
        var responseMarshaller = Marshallers.Create<IMessage>(m => m.ToByteArray(), bytes => method.OutputType.Parser.ParseFrom(bytes));
        var type = method.IsClientStreaming ? (method.IsServerStreaming ? MethodType.DuplexStreaming : MethodType.ClientStreaming)
            : method.IsServerStreaming ? MethodType.ServerStreaming : MethodType.Unary;
        var grpcMethod = new Method<IMessage, IMessage>(type, method.Service.FullName, method.Name, requestMarshaller, responseMarshaller);
        var invoker = channel.CreateCallInvoker();
        var options = new CallOptions(deadline: DateTime.UtcNow.AddSeconds(30));
        try
        {
            switch (type)
            {
                case MethodType.Unary:
                    await invoker.AsyncUnaryCall(grpcMethod, null, options, request);
                    return null;
                case MethodType.ServerStreaming:
                    using (var call = invoker.AsyncServerStreamingCall(grpcMethod, null, options, request))
                    {
                        await call.ResponseStream.MoveNext(CancellationToken.None);
                    }

                    return null;
                default:
                    using (var call = invoker.AsyncDuplexStreamingCall(grpcMethod, null, options))
                    {
                        await call.RequestStream.WriteAsync(request);
                        await call.RequestStream.CompleteAsync();
                        while (await call.ResponseStream.MoveNext(CancellationToken.None))
                        {
                            // a refusal is a Cut frame followed by the status, which MoveNext throws
                        }
                    }

                    return null;
            }
        }
        catch (RpcException e)
        {
            return e;
        }
    }

    /// <summary>The BadRequest field violations of an error (empty when it has none).</summary>
    public static IReadOnlyList<BadRequest.Types.FieldViolation> Violations(RpcException? e) =>
        e?.GetRpcStatus()?.GetDetail<BadRequest>()?.FieldViolations.ToList() ?? [];
}
