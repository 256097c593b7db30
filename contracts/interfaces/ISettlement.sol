// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {IFlexMarket} from "./IFlexMarket.sol";

/// @title Settlement of awards from certified measurements, and payouts to FR owners
interface ISettlement {
    /// @notice The settlement of one award (I-15). Energies are signed Wh.
    struct SettlementRecord {
        bytes32 session;
        bytes32 awardHash;
        int64 baselineWh;
        int64 measuredWh;
        int64 deliveredWh;
        uint64 amountCents;
        uint64 claimCents;
        bytes32 measurementRoot;
        bytes32 baselineRoot;
    }

    /// @notice A settled award as stored on chain.
    struct Settled {
        bytes32 session;
        int64 baselineWh;
        int64 measuredWh;
        int64 deliveredWh;
        uint64 amountCents;
        uint64 claimCents;
        address payer;
        address payee;
        uint64 settledBlock;
        bytes32 measurementRoot;
        bytes32 baselineRoot;
        bytes32 recordHash;
    }

    /// @notice The caller does not hold MARKET_OPERATOR_ROLE.
    error SettlementNotOperator(address account);
    /// @notice The caller does not hold AGGREGATOR_ROLE.
    error SettlementNotAggregator(address account);
    /// @notice The session is not in OutcomeCommitted.
    error SettlementWrongSessionState(bytes32 session, IFlexMarket.SessionState state);
    /// @notice The award is not in the session's committed awards root.
    error SettlementUnknownAward(bytes32 session, bytes32 awardHash);
    /// @notice The award is already settled.
    error SettlementAlreadySettled(bytes32 awardHash);
    /// @notice The record's baseline root is not the BRP's committed root for that day.
    error SettlementBaselineMismatch(address brp, uint64 day, bytes32 baselineRoot);
    /// @notice The baseline was committed after the session's gate closure.
    error SettlementBaselineLate(address brp, uint64 day, uint64 committedBlock, uint64 gateClosedBlock);
    /// @notice A record without a baseline cannot pay anything.
    error SettlementUnbaselinedPayment(bytes32 awardHash);
    /// @notice An amount and a claim on the same award (the amount is net of the penalty).
    error SettlementAmountAndClaim(bytes32 awardHash);
    /// @notice The payer holds neither DSO_ROLE nor TSO_ROLE.
    error SettlementPayerNotBuyer(address payer);
    /// @notice The payee does not hold AGGREGATOR_ROLE.
    error SettlementPayeeNotAggregator(address payee);
    /// @notice Owners and amounts differ in length.
    error SettlementLengthMismatch(uint256 owners, uint256 amounts);
    /// @notice The aggregator already paid under this reference.
    error SettlementRefUsed(address aggregator, bytes32 ref);
    /// @notice The owner is not an FR owner granted by the calling aggregator.
    error SettlementNotOwnersAggregator(address owner, address aggregator);

    /// @notice An award was settled (the amount moved payer → payee; the claim is only recorded).
    event AwardSettled(
        bytes32 indexed awardHash,
        bytes32 indexed session,
        address indexed payee,
        address payer,
        int64 deliveredWh,
        uint64 amountCents,
        uint64 claimCents,
        bytes32 recordHash
    );
    /// @notice An aggregator paid one of its FR owners.
    event OwnerPaid(bytes32 indexed ref, address indexed aggregator, address indexed owner, uint64 amountCents);
}
