// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {MerkleProof} from "@openzeppelin/contracts/utils/cryptography/MerkleProof.sol";
import {IBaselineRegistry} from "./interfaces/IBaselineRegistry.sol";
import {IFlexRoles} from "./interfaces/IFlexRoles.sol";
import {FlexLeaves} from "./libraries/FlexLeaves.sol";
import {FlexRoleIds} from "./libraries/FlexRoleIds.sol";

/// @title BaselineRegistry: BRP baselines committed before gate closure
/// @notice A BRP commits the Merkle root of its signed baseline (kind-7 leaves, one per POD and
/// MTU) for a delivery day once; it never changes. The block number is recorded so that
/// Settlement can require it to be no later than the session's gate closure.
contract BaselineRegistry is IBaselineRegistry {
    struct Commitment {
        bytes32 root;
        uint32 podCount;
        uint64 committedBlock;
    }

    IFlexRoles private immutable _roles;
    mapping(address brp => mapping(uint64 day => Commitment)) private _baselines;

    /// @param roles_ The FlexRoles contract.
    constructor(IFlexRoles roles_) {
        _roles = roles_;
    }

    /// @notice Commit the root of the caller's baseline for a delivery day, once.
    /// @param day The delivery day (UTC midnight, seconds since the epoch).
    /// @param root Merkle root of the baseline's kind-7 leaves.
    /// @param podCount Number of PODs the baseline covers.
    function commitBaseline(uint64 day, bytes32 root, uint32 podCount) external {
        if (!_roles.hasRole(FlexRoleIds.BRP, msg.sender)) revert BaselineRegistryNotBrp(msg.sender);
        if (root == bytes32(0)) revert BaselineRegistryEmptyRoot();
        Commitment storage c = _baselines[msg.sender][day];
        if (c.root != bytes32(0)) revert BaselineRegistryAlreadyCommitted(msg.sender, day);
        c.root = root;
        c.podCount = podCount;
        c.committedBlock = uint64(block.number);
        emit BaselineCommitted(msg.sender, day, root, podCount);
    }

    /// @inheritdoc IBaselineRegistry
    function baselineOf(
        address brp,
        uint64 day
    ) external view returns (bytes32 root, uint32 podCount, uint64 committedBlock) {
        Commitment storage c = _baselines[brp][day];
        return (c.root, c.podCount, c.committedBlock);
    }

    /// @notice Whether a leaf is in a BRP's committed baseline for a day.
    /// @param brp The BRP.
    /// @param day The delivery day.
    /// @param leaf The leaf hash.
    /// @param proof Sibling hashes from the leaf up.
    function verifyBaseline(
        address brp,
        uint64 day,
        bytes32 leaf,
        bytes32[] calldata proof
    ) external view returns (bool) {
        bytes32 root = _baselines[brp][day].root;
        return root != bytes32(0) && MerkleProof.verifyCalldata(proof, root, leaf);
    }

    /// @notice The leaf hash of one POD's baseline energy in one MTU (kind 7).
    /// @param pod keccak256 of the POD code.
    /// @param mtuStart Start of the MTU in seconds.
    /// @param eWh Baseline energy in Wh.
    function baselineLeaf(bytes32 pod, uint64 mtuStart, int64 eWh) external pure returns (bytes32) {
        return FlexLeaves.baseline(pod, mtuStart, eWh);
    }

    /// @notice The FlexRoles contract.
    function roles() external view returns (IFlexRoles) {
        return _roles;
    }
}
