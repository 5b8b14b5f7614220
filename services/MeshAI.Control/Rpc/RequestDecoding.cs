using System.Buffers;
using System.Buffers.Binary;
using System.Diagnostics.CodeAnalysis;
using System.Reflection;
using Google.Protobuf;
using Grpc.AspNetCore.Server;
using Grpc.AspNetCore.Server.Model;
using Grpc.Core;
using MeshAI.Common.Errors;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;

namespace MeshAI.Control.Rpc;

/// <summary>
/// Request decoding failures as specific statuses. grpc-dotnet reads and parses a unary or server-streaming request before
/// any interceptor runs, and answers UNKNOWN for whatever goes wrong there; this class closes that gap: request bytes that
/// are not a valid message (or hold invalid UTF-8) become INVALID_ARGUMENT (MALFORMED_REQUEST), and a request over the size
/// limit becomes RESOURCE_EXHAUSTED (MESSAGE_TOO_LARGE) — both with ErrorInfo, before the message is buffered.
/// </summary>
public static class RequestDecoding
{
    /// <summary>INVALID_ARGUMENT (MALFORMED_REQUEST) for bytes that do not parse as <paramref name="messageType"/>.</summary>
    public static RpcException Malformed(Type messageType, InvalidProtocolBufferException error)
    {
        ArgumentNullException.ThrowIfNull(messageType);
        ArgumentNullException.ThrowIfNull(error);
        var name = messageType.GetProperty("Descriptor", BindingFlags.Public | BindingFlags.Static)?.GetValue(null) is Google.Protobuf.Reflection.MessageDescriptor d
            ? d.FullName
            : messageType.Name;
        return RpcErrors.InvalidArgument("(request)", $"not a valid {name} message: {error.Message}", ErrorReasons.MalformedRequest);
    }

    /// <summary>RESOURCE_EXHAUSTED (MESSAGE_TOO_LARGE).</summary>
    public static RpcException TooLarge(long size, int limit) =>
        RpcErrors.ResourceExhausted("request", size < 0
            ? $"the request is larger than the limit of {limit} bytes"
            : $"the request message is {size} bytes; the limit is {limit} bytes", ErrorReasons.MessageTooLarge);

    /// <summary>Decodes request bytes with <paramref name="parser"/>: the same path every request takes (used by the fuzz tests).</summary>
    public static T Decode<T>(MessageParser<T> parser, ReadOnlySequence<byte> bytes) where T : IMessage<T>
    {
        ArgumentNullException.ThrowIfNull(parser);
        try
        {
            return parser.ParseFrom(bytes);
        }
        catch (InvalidProtocolBufferException e)
        {
            throw Malformed(typeof(T), e);
        }
    }

    /// <summary>
    /// Replaces grpc-dotnet's service binder with <see cref="DecodingServiceMethodProvider{TService}"/> (call after the last
    /// AddGrpc: AddGrpc would add the default one back). Does nothing when the default binder is not registered.
    /// </summary>
    public static IServiceCollection AddRequestDecodingErrors(this IServiceCollection services)
    {
        ArgumentNullException.ThrowIfNull(services);
        var provider = typeof(IServiceMethodProvider<>);
        var defaults = services.Where(d => d.ServiceType == provider && d.ImplementationType is { Name: "BinderServiceMethodProvider`1" }).ToList();
        if (defaults.Count == 0)
        {
            return services;
        }

        foreach (var descriptor in defaults)
        {
            services.Remove(descriptor);
        }

        services.Add(ServiceDescriptor.Singleton(provider, typeof(DecodingServiceMethodProvider<>)));
        return services;
    }

    /// <summary>Refuses unary and server-streaming requests whose message is over <paramref name="maxMessageBytes"/> with MESSAGE_TOO_LARGE (after UseGrpcWeb).</summary>
    public static IApplicationBuilder UseRequestSizeLimit(this IApplicationBuilder app, int maxMessageBytes) =>
        app.Use(next => context =>
        {
            if (context.GetEndpoint()?.Metadata.GetMetadata<GrpcMethodMetadata>() is { } grpc &&
                grpc.Method.Type is MethodType.Unary or MethodType.ServerStreaming &&
                context.Features.Get<IRequestBodyPipeFeature>() is { } body)
            {
                context.Features.Set<IRequestBodyPipeFeature>(new SizeCheckedBody(body.Reader, maxMessageBytes));
            }

            return next(context);
        });

    /// <summary>The request body of a single-message call: checks the message length prefix against the limit before the message is buffered.</summary>
    private sealed class SizeCheckedBody(System.IO.Pipelines.PipeReader inner, int limit) : System.IO.Pipelines.PipeReader, IRequestBodyPipeFeature
    {
        private const int HeaderBytes = 5;
        private bool _checked;

        public System.IO.Pipelines.PipeReader Reader => this;

        public override async ValueTask<System.IO.Pipelines.ReadResult> ReadAsync(CancellationToken cancellationToken = default)
        {
            System.IO.Pipelines.ReadResult result;
            try
            {
                result = await inner.ReadAsync(cancellationToken);
            }
            catch (BadHttpRequestException e) when (e.StatusCode == StatusCodes.Status413PayloadTooLarge)
            {
                throw TooLarge(-1, limit);
            }

            Check(result.Buffer);
            return result;
        }

        public override bool TryRead(out System.IO.Pipelines.ReadResult result)
        {
            if (!inner.TryRead(out result))
            {
                return false;
            }

            Check(result.Buffer);
            return true;
        }

        public override void AdvanceTo(SequencePosition consumed) => inner.AdvanceTo(consumed);

        public override void AdvanceTo(SequencePosition consumed, SequencePosition examined) => inner.AdvanceTo(consumed, examined);

        public override void CancelPendingRead() => inner.CancelPendingRead();

        public override void Complete(Exception? exception = null) => inner.Complete(exception);

        public override ValueTask CompleteAsync(Exception? exception = null) => inner.CompleteAsync(exception);

        private void Check(ReadOnlySequence<byte> buffer)
        {
            if (_checked || buffer.Length < HeaderBytes)
            {
                return;
            }

            _checked = true;
            Span<byte> header = stackalloc byte[HeaderBytes];
            buffer.Slice(0, HeaderBytes).CopyTo(header);
            var length = BinaryPrimitives.ReadUInt32BigEndian(header[1..]);
            if (length > limit)
            {
                throw TooLarge(length, limit);
            }
        }
    }
}

/// <summary>
/// grpc-dotnet's service binding (the generated BindService, each method bound to the service's override) with request
/// marshallers that answer undecodable bytes with <see cref="RequestDecoding.Malformed"/> instead of an exception grpc would
/// report as UNKNOWN.
/// </summary>
public sealed class DecodingServiceMethodProvider<[DynamicallyAccessedMembers(DynamicallyAccessedMemberTypes.PublicMethods)] TService> : IServiceMethodProvider<TService>
    where TService : class
{
    /// <inheritdoc />
    public void OnServiceMethodDiscovery(ServiceMethodProviderContext<TService> context)
    {
        ArgumentNullException.ThrowIfNull(context);
        var bind = FindBindMethod(typeof(TService));
        if (bind is null)
        {
            return;
        }

        bind.Invoke(null, [new Binder(context, bind.GetParameters()[1].ParameterType), null]);
    }

    private static MethodInfo? FindBindMethod(Type serviceType)
    {
        for (var type = serviceType; type is not null; type = type.BaseType)
        {
            if (type.GetCustomAttribute<BindServiceMethodAttribute>() is { } attribute)
            {
                return attribute.BindType.GetMethod(attribute.BindMethodName, BindingFlags.Public | BindingFlags.Static, null, [typeof(ServiceBinderBase), type], null);
            }
        }

        return null;
    }

    private sealed class Binder(ServiceMethodProviderContext<TService> context, Type baseType) : ServiceBinderBase
    {
        public override void AddMethod<TRequest, TResponse>(Method<TRequest, TResponse> method, UnaryServerMethod<TRequest, TResponse>? handler)
        {
            var (invoker, metadata) = Model<UnaryServerMethod<TService, TRequest, TResponse>>(method.Name, typeof(TRequest), typeof(ServerCallContext));
            context.AddUnaryMethod(Decoding(method), metadata, invoker);
        }

        public override void AddMethod<TRequest, TResponse>(Method<TRequest, TResponse> method, ServerStreamingServerMethod<TRequest, TResponse>? handler)
        {
            var (invoker, metadata) = Model<ServerStreamingServerMethod<TService, TRequest, TResponse>>(method.Name, typeof(TRequest), typeof(IServerStreamWriter<TResponse>), typeof(ServerCallContext));
            context.AddServerStreamingMethod(Decoding(method), metadata, invoker);
        }

        public override void AddMethod<TRequest, TResponse>(Method<TRequest, TResponse> method, ClientStreamingServerMethod<TRequest, TResponse>? handler)
        {
            var (invoker, metadata) = Model<ClientStreamingServerMethod<TService, TRequest, TResponse>>(method.Name, typeof(IAsyncStreamReader<TRequest>), typeof(ServerCallContext));
            context.AddClientStreamingMethod(Decoding(method), metadata, invoker);
        }

        public override void AddMethod<TRequest, TResponse>(Method<TRequest, TResponse> method, DuplexStreamingServerMethod<TRequest, TResponse>? handler)
        {
            var (invoker, metadata) = Model<DuplexStreamingServerMethod<TService, TRequest, TResponse>>(method.Name, typeof(IAsyncStreamReader<TRequest>), typeof(IServerStreamWriter<TResponse>), typeof(ServerCallContext));
            context.AddDuplexStreamingMethod(Decoding(method), metadata, invoker);
        }

        private static Method<TRequest, TResponse> Decoding<TRequest, TResponse>(Method<TRequest, TResponse> method)
            where TRequest : class
            where TResponse : class
        {
            var original = method.RequestMarshaller;
            var marshaller = new Marshaller<TRequest>(original.ContextualSerializer, c =>
            {
                try
                {
                    return original.ContextualDeserializer(c);
                }
                catch (InvalidProtocolBufferException e)
                {
                    throw RequestDecoding.Malformed(typeof(TRequest), e);
                }
            });
            return new Method<TRequest, TResponse>(method.Type, method.ServiceName, method.Name, marshaller, method.ResponseMarshaller);
        }

        // As grpc-dotnet binds: the public instance override of the generated base's virtual method, type then method attributes as metadata.
        private (TDelegate Invoker, List<object> Metadata) Model<TDelegate>(string name, params Type[] parameters) where TDelegate : Delegate
        {
            MethodInfo? handler = null;
            for (var type = typeof(TService); type is not null && handler is null; type = type.BaseType)
            {
                var candidate = type.GetMethod(name, BindingFlags.Public | BindingFlags.Instance, null, parameters, null);
                if (candidate is null)
                {
                    break;
                }

                if (candidate.IsVirtual && candidate.GetBaseDefinition().DeclaringType == baseType)
                {
                    handler = candidate;
                }
            }

            if (handler is null)
            {
                throw new InvalidOperationException($"Could not find '{name}' on {typeof(TService)}.");
            }

            var metadata = new List<object>();
            metadata.AddRange(typeof(TService).GetCustomAttributes(inherit: true));
            metadata.AddRange(handler.GetCustomAttributes(inherit: true));
            metadata.Add(new HttpMethodMetadata(["POST"], acceptCorsPreflight: true));
            return ((TDelegate)Delegate.CreateDelegate(typeof(TDelegate), handler), metadata);
        }
    }
}
