using System.CommandLine;
using System.Text.Json.Nodes;
using MeshAI.Cli.Output;
using MeshAI.Contracts.Common.V1;
using MeshAI.Contracts.Network.V1;

namespace MeshAI.Cli.Commands;

/// <summary>`meshnet members invite|list|accept|approve|role|remove`.</summary>
public static class MembersCommands
{
    /// <summary>The `members` command group.</summary>
    public static Command Build(CliRuntime runtime)
    {
        var members = new Command("members", "Invite and list network members");
        members.Add(Invite(runtime));
        members.Add(List(runtime));
        members.Add(Accept(runtime));
        members.Add(Approve(runtime));
        members.Add(SetRole(runtime));
        members.Add(Remove(runtime));
        return members;
    }

    private static Command Invite(CliRuntime runtime)
    {
        var invitee = new Argument<string>("INVITEE") { Description = "Email address or username; omit with --link for a share link", Arity = ArgumentArity.ZeroOrOne };
        var network = CliRuntime.NetworkOption();
        var role = new Option<string>("--role") { Description = "Role of the new member", DefaultValueFactory = _ => "member" };
        role.AcceptOnlyFromAmong("admin", "member", "guest");
        var link = new Option<bool>("--link") { Description = "Create a share link that an admin approves, instead of a personal invite" };
        var command = new Command("invite", "Invite someone to the network") { invitee, network, role, link };
        command.Validators.Add(result =>
        {
            var hasInvitee = !string.IsNullOrWhiteSpace(result.GetValue(invitee));
            if (hasInvitee == result.GetValue(link))
            {
                result.AddError("Give either an email address/username or --link (not both).");
            }
        });
        runtime.Bind(command, async ctx =>
        {
            var networkId = await ctx.NetworkIdAsync(network);
            using var client = await ctx.ConnectAsync();
            var memberRole = ctx.Get(role) switch { "admin" => Role.Admin, "guest" => Role.Guest, _ => Role.Member };
            var response = await client.InviteMemberAsync(
                networkId, ctx.Get(invitee)?.Trim() ?? "", memberRole,
                ctx.Get(link) ? InviteType.ShareLinkWithApproval : InviteType.Unspecified, ctx.CancellationToken);
            if (ctx.Json)
            {
                ctx.WriteJson(response);
                return ExitCodes.Ok;
            }

            var who = string.IsNullOrEmpty(response.Invite?.Invitee) ? "Share link" : "Invited " + response.Invite.Invitee;
            ctx.Out.WriteLine($"{who} as {Display.Name(response.Invite?.Role ?? memberRole)} to {networkId} (invite {response.Invite?.InviteId}, expires {Display.Time(response.Invite?.ExpireTime)}).");
            if (!string.IsNullOrEmpty(response.InviteLink))
            {
                ctx.Out.WriteLine("Invite link (shown once): " + response.InviteLink);
            }

            return ExitCodes.Ok;
        });
        return command;
    }

    private static Command List(CliRuntime runtime)
    {
        var network = CliRuntime.NetworkOption();
        var command = new Command("list", "Members of the network") { network };
        command.Aliases.Add("ls");
        runtime.Bind(command, async ctx =>
        {
            var networkId = await ctx.NetworkIdAsync(network);
            using var client = await ctx.ConnectAsync();
            var members = new List<Member>();
            var request = new ListMembersRequest { NetworkId = networkId, PageSize = 200 };
            do
            {
                var page = await client.Networks.ListMembersAsync(request, deadline: ctx.Deadline, cancellationToken: ctx.CancellationToken);
                members.AddRange(page.Members);
                request.PageToken = page.NextPageToken;
            }
            while (!string.IsNullOrEmpty(request.PageToken) && members.Count < 10_000);

            if (ctx.Json)
            {
                ctx.WriteJson(new JsonObject { ["networkId"] = networkId, ["members"] = JsonOutput.Array(members) });
                return ExitCodes.Ok;
            }

            var table = new TextTable("EMAIL", "NAME", "USER", "ROLE", "STATE", "JOINED");
            foreach (var member in members)
            {
                table.Add(member.Email, member.DisplayName, member.UserId, Display.Name(member.Role), Display.Name(member.State), Display.Time(member.JoinTime));
            }

            table.WriteTo(ctx.Out);
            return ExitCodes.Ok;
        });
        return command;
    }
    private static Command Accept(CliRuntime runtime)
    {
        var link = new Argument<string>("LINK") { Description = "Invite link or token" };
        var command = new Command("accept", "Accept an invite (share links wait for an admin's approval)") { link };
        runtime.Bind(command, async ctx =>
        {
            using var client = await ctx.ConnectAsync();
            var member = (await client.Networks.AcceptInviteAsync(new AcceptInviteRequest { InviteToken = ctx.Get(link) ?? "" }, deadline: ctx.Deadline, cancellationToken: ctx.CancellationToken)).Member;
            if (ctx.Json)
            {
                ctx.WriteJson(member);
                return ExitCodes.Ok;
            }

            ctx.Out.WriteLine($"Joined {member.NetworkId} as {Display.Name(member.Role)} ({Display.Name(member.State)}).");
            return ExitCodes.Ok;
        });
        return command;
    }

    private static Command Approve(CliRuntime runtime)
    {
        var user = new Argument<string>("USER_ID") { Description = "The pending member's user id (see `members list`)" };
        var network = CliRuntime.NetworkOption();
        var command = new Command("approve", "Approve a member waiting for approval (admin)") { user, network };
        runtime.Bind(command, async ctx =>
        {
            var networkId = await ctx.NetworkIdAsync(network);
            using var client = await ctx.ConnectAsync();
            var member = (await client.Networks.ApproveMemberAsync(new ApproveMemberRequest { NetworkId = networkId, UserId = ctx.Get(user) ?? "" }, deadline: ctx.Deadline, cancellationToken: ctx.CancellationToken)).Member;
            return Done(ctx, member, $"Approved {member.Email} ({Display.Name(member.Role)}).");
        });
        return command;
    }

    private static Command SetRole(CliRuntime runtime)
    {
        var user = new Argument<string>("USER_ID") { Description = "The member's user id" };
        var role = new Argument<string>("ROLE") { Description = "admin, member or guest" };
        role.AcceptOnlyFromAmong("admin", "member", "guest");
        var network = CliRuntime.NetworkOption();
        var command = new Command("role", "Change a member's role (admin)") { user, role, network };
        runtime.Bind(command, async ctx =>
        {
            var networkId = await ctx.NetworkIdAsync(network);
            using var client = await ctx.ConnectAsync();
            var newRole = ctx.Get(role) switch { "admin" => Role.Admin, "guest" => Role.Guest, _ => Role.Member };
            var member = (await client.Networks.UpdateMemberRoleAsync(new UpdateMemberRoleRequest { NetworkId = networkId, UserId = ctx.Get(user) ?? "", Role = newRole }, deadline: ctx.Deadline, cancellationToken: ctx.CancellationToken)).Member;
            return Done(ctx, member, $"{member.Email} is now {Display.Name(member.Role)}.");
        });
        return command;
    }

    private static Command Remove(CliRuntime runtime)
    {
        var user = new Argument<string>("USER_ID") { Description = "The member's user id" };
        var network = CliRuntime.NetworkOption();
        var command = new Command("remove", "Remove a member: their access ends now and their devices are revoked (admin)") { user, network };
        runtime.Bind(command, async ctx =>
        {
            var networkId = await ctx.NetworkIdAsync(network);
            using var client = await ctx.ConnectAsync();
            var response = await client.Networks.RemoveMemberAsync(new RemoveMemberRequest { NetworkId = networkId, UserId = ctx.Get(user) ?? "" }, deadline: ctx.Deadline, cancellationToken: ctx.CancellationToken);
            if (ctx.Json)
            {
                ctx.WriteJson(response);
                return ExitCodes.Ok;
            }

            ctx.Out.WriteLine($"Removed {ctx.Get(user)} from {networkId}; revoked devices: {(response.RevokedDeviceIds.Count == 0 ? "none" : string.Join(", ", response.RevokedDeviceIds))}.");
            return ExitCodes.Ok;
        });
        return command;
    }

    private static int Done(CliContext ctx, Member member, string text)
    {
        if (ctx.Json)
        {
            ctx.WriteJson(member);
        }
        else
        {
            ctx.Out.WriteLine(text);
        }

        return ExitCodes.Ok;
    }
}
