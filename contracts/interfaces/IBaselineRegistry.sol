// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

/// @title Roots of the BRPs' signed baselines, one per BRP and delivery day
interface IBaselineRegistry {
    /// @notice The caller does not hold BRP_ROLE.
    error BaselineRegistryNotBrp(address account);
    /// @notice This BRP already committed a baseline for this day.
    error BaselineRegistryAlreadyCommitted(address brp, uint64 day);
    /// @notice A zero root.
    error BaselineRegistryEmptyRoot();

    /// @notice A BRP committed the root of its baseline for a delivery day.
    event BaselineCommitted(address indexed brp, uint64 indexed day, bytes32 root, uint32 podCount);

    /// @notice The committed baseline of a BRP for a day: its root (zero when none), its POD count
    /// and the block it was committed in.
    function baselineOf(
        address brp,
        uint64 day
    ) external view returns (bytes32 root, uint32 podCount, uint64 committedBlock);
}
