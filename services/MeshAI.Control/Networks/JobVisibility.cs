using MeshAI.Contracts.Common.V1;
using MeshAI.Contracts.Network.V1;

namespace MeshAI.Control.Networks;

/// <summary>
/// Who sees which jobs (spec network_model.roles: guests have "limited visibility"; defaults.workload_visibility is
/// members_only). Admins see every job of the network; members see everyone's jobs under MEMBERS_ONLY (the default) and
/// only their own under ADMINS_ONLY; guests see only their own jobs. A job the caller may not see is NOT_FOUND, exactly
/// like one that does not exist. One rule for get, watch, cancel, explain and list.
/// </summary>
public static class JobVisibility
{
    /// <summary>True when the member sees every job of the network, not only their own.</summary>
    public static bool SeesEveryonesJobs(Membership membership)
    {
        ArgumentNullException.ThrowIfNull(membership);
        return membership.Role switch
        {
            Role.Admin => true,
            Role.Member => membership.Settings.WorkloadVisibility != WorkloadVisibility.AdminsOnly,
            _ => false,
        };
    }

    /// <summary>True when <paramref name="callerUserId"/> may see a job <paramref name="submittedByUserId"/> submitted.</summary>
    public static bool CanSee(Membership membership, string callerUserId, string submittedByUserId) =>
        string.Equals(callerUserId, submittedByUserId, StringComparison.Ordinal) || SeesEveryonesJobs(membership);
}
