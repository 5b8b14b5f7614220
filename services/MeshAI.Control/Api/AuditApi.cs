using Google.Protobuf;
using Grpc.Core;
using MeshAI.Contracts.Audit.V1;
using MeshAI.Control.Identity;
using MeshAI.Control.Networks;
using MeshAI.Control.Security;
using MeshAI.Control.Storage;
using Microsoft.Extensions.Options;

namespace MeshAI.Control.Api;

/// <summary>meshai.audit.v1.AuditService: the network's security events for admins, as pages or a JSONL/CSV export.</summary>
public sealed class AuditApi(AuditLog audit, NetworkAccess access, SessionAuthenticator auth, IOptions<ControlPlaneOptions> options) : AuditService.AuditServiceBase
{
    /// <inheritdoc />
    public override async Task<ListAuditEventsResponse> ListAuditEvents(ListAuditEventsRequest request, ServerCallContext context)
    {
        await access.RequireAdminAsync(await auth.RequireAsync(context), request.NetworkId, "view the audit log", context.CancellationToken);
        var (events, next) = await audit.ListAsync(request.NetworkId, PageTokens.Size(request.PageSize, options.Value.Limits), request.PageToken, context.CancellationToken);
        return new ListAuditEventsResponse { Events = { events }, NextPageToken = next };
    }

    /// <inheritdoc />
    public override async Task ExportAuditEvents(ExportAuditEventsRequest request, IServerStreamWriter<ExportAuditEventsResponse> responseStream, ServerCallContext context)
    {
        await access.RequireAdminAsync(await auth.RequireAsync(context), request.NetworkId, "export the audit log", context.CancellationToken);
        var format = request.Format == AuditExportFormat.Unspecified ? AuditExportFormat.Jsonl : request.Format;
        await foreach (var chunk in audit.ExportAsync(request.NetworkId, format, context.CancellationToken))
        {
            await responseStream.WriteAsync(new ExportAuditEventsResponse { Data = ByteString.CopyFrom(chunk) }, context.CancellationToken);
        }
    }
}
